package tlsca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// Bundle is a parsed set of CA certificates: the trust anchors for upstream
// TLS.
type Bundle struct {
	// Source says where the bundle came from, for messages: the file the
	// user named, or the cached copy of a download.
	Source string
	// URL is where a downloaded bundle came from ("" for a file).
	URL string
	// Fetched is when the bundle was downloaded (or last confirmed
	// unchanged by the server); for a file, its modification time.
	Fetched time.Time
	// Certs are the CA certificates valid at parse time, in file order.
	Certs []*x509.Certificate
	// Pool holds Certs.
	Pool *x509.CertPool
	// Expired are CA certificates in the data that had expired at parse
	// time; they are not trusted. Error messages use them to say that the
	// server's CA was dropped rather than absent.
	Expired []*x509.Certificate
	// NotCA are certificates in the data that are not CAs (a server
	// certificate pasted into the bundle); they are not trusted.
	NotCA []*x509.Certificate
	// System says the bundle is the system's trust store (SystemBundle):
	// its certificates are not listed, and it is never reloaded.
	System bool
}

// maxBundleSize bounds downloads and files: the published global bundle is
// about 160 KB.
const maxBundleSize = 4 << 20

// expiryWarning is how far ahead Report warns about CAs that will expire.
const expiryWarning = 30 * 24 * time.Hour

// ParseBundle parses PEM data and keeps the CA certificates valid at now.
// Every PEM block must be a certificate that parses: a private key or a
// corrupt certificate means the file is not what the user thinks it is, so
// the whole bundle is rejected. Expired CAs and non-CA certificates are
// kept aside (Bundle.Expired, Bundle.NotCA), not trusted; [Bundle.Report]
// logs them. It fails when no CA valid now remains, naming what was found
// instead (nothing, an HTML page, a server certificate, only expired CAs).
func ParseBundle(data []byte, source string, now time.Time) (*Bundle, error) {
	b := &Bundle{Source: source, Pool: x509.NewCertPool()}
	rest := data
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
			return nil, fmt.Errorf("CA bundle %s: certificate #%d: %w", source, len(b.Certs)+len(b.Expired)+len(b.NotCA)+1, err)
		}
		switch {
		case !cert.IsCA:
			b.NotCA = append(b.NotCA, cert)
		case now.After(cert.NotAfter):
			b.Expired = append(b.Expired, cert)
		default:
			b.Certs = append(b.Certs, cert)
			b.Pool.AddCert(cert)
		}
	}
	if len(b.Certs) > 0 {
		return b, nil
	}
	switch {
	case len(b.Expired) > 0:
		return nil, fmt.Errorf("CA bundle %s: all %d CA certificates have expired (the last on %s); download the current RDS bundle",
			source, len(b.Expired), lastExpiry(b.Expired).Format(time.DateOnly))
	case len(b.NotCA) > 0:
		return nil, fmt.Errorf("CA bundle %s: certificate %q is not a CA certificate (a server certificate?) and the file holds no CA; use the RDS CA bundle",
			source, CertName(b.NotCA[0]))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("CA bundle %s is empty: no PEM certificates found", source)
	}
	return nil, errors.New("CA bundle " + source + ": no PEM certificates found (" + describeBody(data) + ")")
}

// describeBody says what a non-PEM body looks like, for the error.
func describeBody(data []byte) string {
	head := strings.ToLower(strings.TrimSpace(string(data[:min(len(data), 512)])))
	switch {
	case strings.HasPrefix(head, "<"):
		return "the data looks like HTML or XML, e.g. an error page"
	case strings.HasPrefix(head, "{"):
		return "the data looks like JSON"
	}
	return fmt.Sprintf("%d bytes that are not PEM", len(data))
}

func lastExpiry(certs []*x509.Certificate) time.Time {
	var t time.Time
	for _, c := range certs {
		if c.NotAfter.After(t) {
			t = c.NotAfter
		}
	}
	return t
}

// CertName is a certificate's common name, or its whole subject when it has
// none: the name people know a CA by.
func CertName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// Describe names the bundle for messages: "/path (102 CAs, downloaded
// 2026-11-20)" or "/path (1 CA, file modified 2026-11-21)".
func (b *Bundle) Describe() string {
	if b.Pool == nil || b.System {
		return b.Source // not parsed here, or the system's: only its name is known
	}
	n := fmt.Sprintf("%d CAs", len(b.Certs))
	if len(b.Certs) == 1 {
		n = "1 CA"
	}
	switch {
	case b.Fetched.IsZero():
		return fmt.Sprintf("%s (%s)", b.Source, n)
	case b.URL != "":
		return fmt.Sprintf("%s (%s, downloaded %s)", b.Source, n, b.Fetched.UTC().Format(time.DateOnly))
	}
	return fmt.Sprintf("%s (%s, file modified %s)", b.Source, n, b.Fetched.UTC().Format(time.DateOnly))
}

// Report logs what a security reviewer wants to know about the bundle: a
// warning listing the expired CAs that were dropped and the non-CA
// certificates that were ignored, a warning listing CAs that expire within
// 30 days of now (louder when that is every CA), and at debug level the
// count and the name of every trusted CA.
func (b *Bundle) Report(log *slog.Logger, now time.Time) {
	if len(b.Expired) > 0 {
		log.Warn("CA bundle holds expired CAs; they are not trusted", "bundle", b.Source,
			"expired", len(b.Expired), "cas", describeCerts(b.Expired))
	}
	if len(b.NotCA) > 0 {
		log.Warn("CA bundle holds certificates that are not CAs; they are ignored", "bundle", b.Source,
			"certs", describeCerts(b.NotCA))
	}
	var soon []*x509.Certificate
	for _, c := range b.Certs {
		if c.NotAfter.Sub(now) < expiryWarning {
			soon = append(soon, c)
		}
	}
	switch {
	case len(soon) > 0 && len(soon) == len(b.Certs):
		log.Warn("every CA in the bundle expires within 30 days: after that no server can be verified; get a current RDS CA bundle",
			"bundle", b.Source, "expires", lastExpiry(soon).UTC().Format(time.DateOnly), "cas", describeCerts(soon))
	case len(soon) > 0:
		log.Warn("CAs in the bundle expire within 30 days: servers whose certificates they sign will fail verification; rotate those DBs to a current CA",
			"bundle", b.Source, "count", len(soon), "cas", describeCerts(soon))
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		names := make([]string, len(b.Certs))
		for i, c := range b.Certs {
			names[i] = CertName(c)
		}
		sort.Strings(names)
		log.Debug("trusted CAs", "bundle", b.Source, "count", len(b.Certs), "names", strings.Join(names, "; "))
	}
}

// describeCerts lists certificates as "name (expires DATE)".
func describeCerts(certs []*x509.Certificate) string {
	parts := make([]string, len(certs))
	for i, c := range certs {
		parts[i] = fmt.Sprintf("%s (expires %s)", CertName(c), c.NotAfter.UTC().Format(time.DateOnly))
	}
	return strings.Join(parts, "; ")
}
