package tlsca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"strings"
	"time"
)

// Explain turns a failed TLS handshake with the upstream into a failure a
// person can act on: its cause says what failed, the name that was
// expected, what the server presented and the bundle in use (path, CA
// count, download date); its fix says what to do (none when nothing
// specific is known). A plaintext connection refused at connect time
// ([PlaintextRefusedError]) is explained too. ok is false when err is
// neither; the engine then explains it its own way. now is the local
// clock, quoted when a certificate is outside its validity.
//
// For example, the cause "TLS verification of
// db.x.us-east-1.rds.amazonaws.com failed: certificate signed by unknown
// authority: the server's CA 'Amazon RDS us-east-1 Root CA RSA2048 G1' is
// not in the bundle /path (102 CAs, downloaded 2026-11-20); ...".
func (u Upstream) Explain(err error, now time.Time) (*failure.Failure, bool) {
	cause, fix, ok := u.explain(err, now)
	if !ok {
		return nil, false
	}
	return failure.Wrap(failure.UpstreamTLS, err, cause, fix), true
}

func (u Upstream) explain(err error, now time.Time) (cause, fix string, ok bool) {
	var refused *PlaintextRefusedError
	if errors.As(err, &refused) {
		return refused.Cause(), refused.Fix(), true
	}
	var chain []*x509.Certificate
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		chain = cve.UnverifiedCertificates
	}
	want := u.ExpectedName()
	bundle := "(none)"
	if u.Bundle != nil {
		bundle = u.Bundle.Describe()
	}

	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		if len(chain) == 0 && unknown.Cert != nil {
			chain = []*x509.Certificate{unknown.Cert}
		}
		ca := serverCA(chain)
		cause = fmt.Sprintf("TLS verification of %s failed: certificate signed by unknown authority: the server's CA '%s' is not in the bundle %s; the server presented %s",
			want, ca, bundle, presented(chain))
		if dropped := u.droppedCA(chain); dropped != nil {
			return cause + fmt.Sprintf(". The bundle held that CA, but it expired on %s and is no longer trusted", dropped.NotAfter.UTC().Format(time.DateOnly)),
				"move the DB to a current CA (rds-ca-rsa2048-g1, rds-ca-rsa4096-g1 or rds-ca-ecc384-g1: aws rds modify-db-instance --ca-certificate-identifier ...)", true
		}
		fix = "use the RDS CA bundle: omit --ca-bundle to download AWS's global bundle, or pass the bundle for the DB's region"
		if u.Bundle != nil && u.Bundle.URL != "" {
			fix = fmt.Sprintf("the bundle came from %s; if the DB is in GovCloud or China, or its CA is newer than the bundle, pass --ca-bundle-region with the DB's region (or --ca-bundle FILE); otherwise the server is not presenting an RDS certificate: check that --endpoint/--dial-address reach the DB itself and nothing in between intercepts TLS", u.Bundle.URL)
		}
		if u.Bundle != nil && u.Bundle.System {
			fix = systemUnknownCAFix
		}
		if IsRDSProxyName(want) {
			fix += "; RDS Proxy certificates chain to the Amazon Trust Services roots, which must be in this system's trust store"
		}
		return cause, fix, true
	}

	var name x509.HostnameError
	if errors.As(err, &name) {
		if len(chain) == 0 && name.Certificate != nil {
			chain = []*x509.Certificate{name.Certificate}
		}
		return fmt.Sprintf("TLS verification failed: the upstream certificate is not valid for %s: the server presented %s (bundle %s)",
			want, presented(chain), bundle), "--endpoint must be the RDS endpoint name, not an IP address or a CNAME; to connect through a tunnel or another address keep --endpoint and set --dial-address; if the server's certificate rightly carries another name, set --tls-server-name to it", true
	}

	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		c := invalid.Cert
		who := "the server's certificate"
		if len(chain) > 0 && c != nil && !bytes.Equal(c.Raw, chain[0].Raw) {
			who = "a CA certificate in the server's chain"
		}
		if len(chain) == 0 && c != nil {
			chain = []*x509.Certificate{c}
		}
		clock := now.UTC().Format(time.RFC3339)
		switch {
		case invalid.Reason == x509.Expired && c != nil && now.After(c.NotAfter):
			return fmt.Sprintf("TLS verification of %s failed: %s '%s' expired on %s (this machine's clock says %s); the server presented %s (bundle %s)",
					want, who, CertName(c), c.NotAfter.UTC().Format(time.RFC3339), clock, presented(chain), bundle),
				"check this machine's clock; if it is right, the server's certificate must be renewed (on RDS: aws rds modify-db-instance --ca-certificate-identifier with a current CA)", true
		case invalid.Reason == x509.Expired && c != nil:
			return fmt.Sprintf("TLS verification of %s failed: %s '%s' is not valid before %s (this machine's clock says %s); the server presented %s (bundle %s)",
					want, who, CertName(c), c.NotBefore.UTC().Format(time.RFC3339), clock, presented(chain), bundle),
				"check this machine's clock", true
		}
		return fmt.Sprintf("TLS verification of %s failed: %s; the server presented %s (bundle %s)",
			want, invalid.Error(), presented(chain), bundle), "check this machine's clock; if the CA expired, use the current RDS CA bundle", true
	}

	if cve != nil {
		return fmt.Sprintf("TLS verification of %s failed: %s; the server presented %s (bundle %s)", want, cve.Err, presented(chain), bundle), "", true
	}
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) {
		return fmt.Sprintf("the upstream %s agreed to TLS but then did not speak it (%s)", want, rec.Msg),
			"check that --endpoint/--dial-address point at the database, not another service", true
	}
	return "", "", false
}

// serverCA names the CA the presented chain claims to end at: the issuer
// of its last certificate.
func serverCA(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "(unknown)"
	}
	last := chain[len(chain)-1]
	if last.Issuer.CommonName != "" {
		return last.Issuer.CommonName
	}
	return last.Issuer.String()
}

// droppedCA returns the expired bundle CA that issued the top of chain,
// if any.
func (u Upstream) droppedCA(chain []*x509.Certificate) *x509.Certificate {
	if u.Bundle == nil || len(chain) == 0 {
		return nil
	}
	last := chain[len(chain)-1]
	for _, c := range u.Bundle.Expired {
		if bytes.Equal(c.RawSubject, last.RawIssuer) {
			return c
		}
	}
	return nil
}

// presented describes the server's certificate: its names, issuer and
// validity.
func presented(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "no certificate"
	}
	c := chain[0]
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	desc := fmt.Sprintf("a certificate for '%s'", CertName(c))
	if len(names) > 0 {
		desc += " (names: " + strings.Join(names, ", ") + ")"
	} else {
		desc += " (no subject alternative names)"
	}
	return desc + fmt.Sprintf(" issued by '%s', valid %s to %s",
		issuerName(c), c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}
