package emulator

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"
)

func TestCAServerCertVerifies(t *testing.T) {
	ca, err := NewCA("rds-iam-proxy emulator test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert(testHost, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != testHost {
		t.Errorf("DNS names %v", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IP addresses %v", leaf.IPAddresses)
	}
	now := time.Now()
	if leaf.NotBefore.After(now.Add(-59*time.Minute)) || leaf.NotAfter.Before(now.Add(23*time.Hour)) || leaf.NotAfter.After(now.Add(25*time.Hour)) {
		t.Errorf("validity %v..%v, want now-1h..now+24h", leaf.NotBefore, leaf.NotAfter)
	}
	for _, name := range []string{testHost, "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: ca.Pool()}); err == nil {
		t.Error("leaf verified for a name it does not carry")
	}
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: testHost, Roots: other.Pool()}); err == nil {
		t.Error("leaf verified against another CA")
	}
	if _, err := ca.ServerCert(); err == nil {
		t.Error("ServerCert with no names succeeded")
	}
	noIP, err := ca.ServerCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(noIP.Leaf.IPAddresses) != 0 {
		t.Errorf("IP SANs %v added though no name is an IP", noIP.Leaf.IPAddresses)
	}
}

// A TLS handshake with full verification, as a client given CertPEM as its
// CA bundle does it.
func TestCATLSHandshake(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServerCertPEM(testHost)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM block %v, want PRIVATE KEY", kb)
	}
	if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		t.Fatalf("key is not PKCS #8: %v", err)
	} else if _, ok := k.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("key type %T", k)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("CertPEM does not parse")
	}

	cConn, sConn := net.Pipe()
	defer cConn.Close()
	defer sConn.Close()
	done := make(chan error, 1)
	go func() {
		srv := tls.Server(sConn, &tls.Config{Certificates: []tls.Certificate{pair}})
		done <- srv.HandshakeContext(t.Context())
	}()
	cl := tls.Client(cConn, &tls.Config{ServerName: testHost, RootCAs: roots})
	if err := cl.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

// Certificates with a chosen validity: an expired CA still issues leaves
// (as a CA past its date would), and an expired leaf fails verification.
func TestCAWithValidity(t *testing.T) {
	now := time.Now()
	old, err := NewCAWithOptions("old CA", Validity{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !old.Cert().NotAfter.Before(now) || !old.Cert().IsCA {
		t.Fatalf("CA validity %v..%v", old.Cert().NotBefore, old.Cert().NotAfter)
	}
	leaf, err := old.ServerCert(testHost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: testHost, Roots: old.Pool()}); err == nil {
		t.Error("a leaf of an expired CA verified")
	}
	ca, err := NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.ServerCertWithOptions(Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	_, err = expired.Leaf.Verify(x509.VerifyOptions{DNSName: testHost, Roots: ca.Pool()})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired leaf: %v", err)
	}
	if good, err := ca.ServerCertWithOptions(Validity{}, testHost); err != nil || good.Leaf.NotAfter.Before(now.Add(23*time.Hour)) {
		t.Errorf("zero validity should give the default: %v", err)
	}
}
