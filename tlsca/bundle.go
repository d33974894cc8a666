package tlsca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Bundle is a parsed set of CA certificates.
type Bundle struct {
	// Source says where the bundle came from (a path or URL), for messages.
	Source string
	Certs  []*x509.Certificate
	Pool   *x509.CertPool
}

// maxBundleSize bounds downloads and files: the published global bundle is
// about 160 KB.
const maxBundleSize = 4 << 20

// ParseBundle parses PEM data and keeps the CA certificates. It fails when
// the data holds no certificate, something that is not a certificate, or no
// CA certificate valid now: such a file is a mistake (a server certificate, a
// key, an HTML error page), not a trust store.
func ParseBundle(data []byte, source string, now time.Time) (*Bundle, error) {
	b := &Bundle{Source: source, Pool: x509.NewCertPool()}
	rest := data
	var expired int
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA bundle %s: found a %q PEM block; a bundle holds only CERTIFICATE blocks", source, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: %w", source, err)
		}
		if !cert.IsCA {
			return nil, fmt.Errorf("CA bundle %s: certificate %q is not a CA certificate (a server certificate?); use the RDS CA bundle", source, cert.Subject.CommonName)
		}
		if now.After(cert.NotAfter) {
			expired++
			continue
		}
		b.Certs = append(b.Certs, cert)
		b.Pool.AddCert(cert)
	}
	if len(b.Certs) == 0 {
		if expired > 0 {
			return nil, fmt.Errorf("CA bundle %s: all %d CA certificates have expired; download the current RDS bundle", source, expired)
		}
		return nil, errors.New("CA bundle " + source + ": no PEM certificates found")
	}
	return b, nil
}
