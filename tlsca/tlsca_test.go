package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
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
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-30 * 24 * time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for name valid from notBefore to
// notAfter (zero: an hour ago to an hour ahead).
func (c *testCA) leafValid(t *testing.T, name string, notBefore, notAfter time.Time) ([]byte, tls.Certificate) {
	t.Helper()
	if notBefore.IsZero() {
		notBefore, notAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (c *testCA) leaf(t *testing.T, name string) ([]byte, tls.Certificate) {
	return c.leafValid(t, name, time.Time{}, time.Time{})
}

func TestParseBundle(t *testing.T) {
	now := time.Now()
	good := newCA(t, "good", now.Add(24*time.Hour))
	expired := newCA(t, "expired", now.Add(-time.Hour))
	leafPEM, _ := good.leaf(t, "db.example")

	b, err := ParseBundle(join(expired.pem, good.pem, leafPEM), "test", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) != 1 || b.Certs[0].Subject.CommonName != "good" {
		t.Fatalf("kept %d CAs, want only 'good'", len(b.Certs))
	}
	if len(b.Expired) != 1 || len(b.NotCA) != 1 {
		t.Fatalf("expired %d, not CA %d; want 1 and 1", len(b.Expired), len(b.NotCA))
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"empty":        {nil, "is empty"},
		"html":         {[]byte("<html>503 Service Unavailable</html>"), "looks like HTML"},
		"text":         {[]byte("hello"), "no PEM certificates"},
		"only expired": {expired.pem, "all 1 CA certificates have expired"},
		"server cert":  {leafPEM, "is not a CA certificate"},
		"key":          {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), `"PRIVATE KEY" PEM block`},
		"corrupt":      {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), "certificate #1"},
	} {
		if _, err := ParseBundle(c.data, "f.pem", now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// tlsServer serves TLS with cert on loopback and completes handshakes.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake dials addr and runs a client handshake with cfg.
func handshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = Handshake(t.Context(), conn, cfg)
	return err
}
