package tlsca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string, notAfter time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (c *testCA) leaf(t *testing.T, name string, isCA bool) ([]byte, tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestParseBundle(t *testing.T) {
	now := time.Now()
	good := newCA(t, "good", now.Add(24*time.Hour))
	expired := newCA(t, "expired", now.Add(-time.Hour))
	leafPEM, _ := good.leaf(t, "db.example", false)

	b, err := ParseBundle(append(append([]byte{}, expired.pem...), good.pem...), "test", now)
	if err != nil || len(b.Certs) != 1 || b.Certs[0].Subject.CommonName != "good" {
		t.Fatalf("mixed bundle: %v %v", b, err)
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"empty":        {nil, "no PEM certificates"},
		"html":         {[]byte("<html>503</html>"), "no PEM certificates"},
		"only expired": {expired.pem, "all 1 CA certificates have expired"},
		"server cert":  {leafPEM, "is not a CA certificate"},
		"key":          {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), `"PRIVATE KEY" PEM block`},
	} {
		if _, err := ParseBundle(c.data, "f.pem", now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

// TestPublishedBundle parses the copy of AWS's global bundle kept beside
// the project (../shared): 102 G1 roots, none expired.
func TestPublishedBundle(t *testing.T) {
	data, err := os.ReadFile("../../shared/fixtures/rds-ca/global-bundle.pem")
	if err != nil {
		t.Fatalf("the shared RDS CA fixture is missing (it sits beside the repository in CI): %v", err)
	}
	b, err := ParseBundle(data, "global-bundle.pem", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) < 100 {
		t.Fatalf("%d CAs, want the ~102 published roots", len(b.Certs))
	}
	var names []string
	for _, c := range b.Certs {
		names = append(names, c.Subject.CommonName)
	}
	// The three G1 families (rds-ca-rsa2048-g1, -rsa4096-g1, -ecc384-g1).
	for _, want := range []string{"us-east-1 Root CA RSA2048 G1", "us-east-1 Root CA RSA4096 G1", "us-east-1 Root CA ECC384 G1"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("no %s among %d CAs", want, len(names))
		}
	}
	old, err := os.ReadFile("../../shared/fixtures/rds-ca/global-bundle-2022-with-expired.pem")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	all, err := ParseBundle(old, "old", time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	ob, err := ParseBundle(old, "old", at)
	if err != nil {
		t.Fatal(err)
	}
	if len(ob.Certs) >= len(all.Certs) {
		t.Fatalf("the 2022 bundle keeps %d of %d CAs in 2026; the 2019 roots expired in 2024", len(ob.Certs), len(all.Certs))
	}
	for _, c := range ob.Certs {
		if at.After(c.NotAfter) {
			t.Errorf("expired %s kept", c.Subject.CommonName)
		}
	}
}

func TestLoadFileDownloadAndCache(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(24*time.Hour))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(ca.pem)
	}))
	defer srv.Close()
	dir := t.TempDir()
	opts := Options{CacheDir: dir, URL: srv.URL + "/global/global-bundle.pem"}

	b, err := Load(context.Background(), opts)
	if err != nil || len(b.Certs) != 1 || hits.Load() != 1 {
		t.Fatalf("download: %v (%d hits)", err, hits.Load())
	}
	cached := filepath.Join(dir, "global-bundle.pem")
	if b.Source != cached {
		t.Fatalf("source %q, want %q", b.Source, cached)
	}
	if _, err := Load(context.Background(), opts); err != nil || hits.Load() != 1 {
		t.Fatalf("second load downloaded again: %v (%d hits)", err, hits.Load())
	}
	// A corrupt cache is replaced.
	os.WriteFile(cached, []byte("garbage"), 0o644)
	if _, err := Load(context.Background(), opts); err != nil || hits.Load() != 2 {
		t.Fatalf("corrupt cache: %v (%d hits)", err, hits.Load())
	}
	// A given file wins and nothing is downloaded.
	file := filepath.Join(t.TempDir(), "mine.pem")
	os.WriteFile(file, ca.pem, 0o644)
	if b, err := Load(context.Background(), Options{File: file, CacheDir: dir, URL: srv.URL}); err != nil || b.Source != file || hits.Load() != 2 {
		t.Fatalf("file: %v", err)
	}
	if _, err := Load(context.Background(), Options{File: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestDownloadFailureSaysWhatToDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := Load(context.Background(), Options{CacheDir: t.TempDir(), URL: srv.URL + "/b.pem"})
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "--ca-bundle") {
		t.Fatalf("error %v", err)
	}
}

// TestClientConfigVerifiesName: the config trusts the bundle's CAs and
// checks the endpoint name.
func TestClientConfigVerifiesName(t *testing.T) {
	ca := newCA(t, "ca", time.Now().Add(24*time.Hour))
	_, cert := ca.leaf(t, "db.example", false)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	b, err := ParseBundle(ca.pem, "t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, wantErr := range map[string]bool{"db.example": false, "other.example": true} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := b.ClientConfig(name)
		if cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
			t.Fatal("weak config")
		}
		err = tls.Client(conn, cfg).Handshake()
		conn.Close()
		if (err != nil) != wantErr {
			t.Errorf("%s: handshake error %v", name, err)
		}
	}
}
