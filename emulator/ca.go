package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a throwaway certificate authority, made in memory when the emulator
// starts. It exists so that a database front can serve TLS for a realistic RDS
// endpoint name (mydb.xxxx.us-east-1.rds.amazonaws.com) and a client can check
// it with full verification against [CA.CertPEM], exactly as it checks a real
// RDS server against the RDS CA bundle. Tests therefore exercise the same
// verify-full code path as production instead of switching verification off.
//
// The private key never leaves the process except as the PEM of the leaf keys
// it hands out. A CA is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certDER []byte
	key     *ecdsa.PrivateKey
}

// Validity of the root and of the leaves it signs. Leaves start an hour in the
// past so that small clock differences between processes do not matter.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 24 * time.Hour
	backdateLeaves = time.Hour
)

// NewCA makes a new root certificate authority with an ECDSA P-256 key and
// the given common name, valid from an hour ago for ten years.
func NewCA(commonName string) (*CA, error) {
	return NewCAWithOptions(commonName, Validity{})
}

// Validity is a certificate's validity period. A zero field takes the
// default of what is being made; tests set them to make certificates that
// have expired or are not valid yet.
type Validity struct {
	NotBefore, NotAfter time.Time
}

func (v Validity) or(notBefore, notAfter time.Time) (time.Time, time.Time) {
	if !v.NotBefore.IsZero() {
		notBefore = v.NotBefore
	}
	if !v.NotAfter.IsZero() {
		notAfter = v.NotAfter
	}
	return notBefore, notAfter
}

// NewCAWithOptions is [NewCA] with a chosen validity, e.g. a CA that has
// expired, for tests of how clients treat one (the server certificates it
// issues keep their own validity).
func NewCAWithOptions(commonName string, v Validity) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generate CA key: %w", err)
	}
	now := time.Now()
	notBefore, notAfter := v.or(now.Add(-backdateLeaves), now.Add(caValidity))
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"rds-iam-proxy emulator"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("emulator: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("emulator: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, certDER: der, key: key}, nil
}

// CertPEM returns the root certificate as PEM, to be given to clients as
// their trusted CA bundle (the proxy's --ca-bundle, libpq's sslrootcert).
func (c *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.certDER})
}

// Pool returns a new certificate pool holding only the root. Each call returns
// a fresh pool, so a caller may add to it without affecting others.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// ServerCert issues a server certificate for the given names, valid from an
// hour ago until 24 hours from now. Names that are IP literals (127.0.0.1,
// ::1) become IP subject alternative names; all others become DNS names.
func (c *CA) ServerCert(dnsNames ...string) (tls.Certificate, error) {
	return c.ServerCertWithOptions(Validity{}, dnsNames...)
}

// ServerCertWithOptions is [CA.ServerCert] with a chosen validity, e.g. a
// certificate that expired an hour ago.
func (c *CA) ServerCertWithOptions(v Validity, dnsNames ...string) (tls.Certificate, error) {
	leaf, der, key, err := c.issue(v, dnsNames)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Cert is the CA's own certificate.
func (c *CA) Cert() *x509.Certificate { return c.cert }

// ServerCertPEM is [CA.ServerCert] as PEM files, for servers that read their
// certificate from disk (PostgreSQL's ssl_cert_file and ssl_key_file). The
// key is PKCS #8 ("PRIVATE KEY").
func (c *CA) ServerCertPEM(dnsNames ...string) (certPEM, keyPEM []byte, err error) {
	_, der, key, err := c.issue(Validity{}, dnsNames)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("emulator: marshal server key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func (c *CA) issue(v Validity, names []string) (*x509.Certificate, []byte, *ecdsa.PrivateKey, error) {
	if len(names) == 0 {
		return nil, nil, nil, errors.New("emulator: server certificate needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("emulator: generate server key: %w", err)
	}
	now := time.Now()
	notBefore, notAfter := v.or(now.Add(-backdateLeaves), now.Add(leafValidity))
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if n == "" {
			return nil, nil, nil, errors.New("emulator: empty name for server certificate")
		}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("emulator: create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("emulator: parse server certificate: %w", err)
	}
	return leaf, der, key, nil
}

// randomSerial returns a positive 127-bit serial number (RFC 5280 allows up
// to 20 octets).
func randomSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}
