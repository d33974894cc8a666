package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Mode is how the upstream's certificate is checked.
type Mode string

// The TLS modes, named as libpq names them.
const (
	// VerifyFull checks the chain against the bundle and that the
	// certificate names the server. The default, and the only mode allowed
	// for RDS endpoint names.
	VerifyFull Mode = "verify-full"
	// VerifyCA checks the chain against the bundle but not the name: for
	// servers that are not RDS endpoints and whose certificate names
	// something else, when --tls-server-name cannot fix that.
	VerifyCA Mode = "verify-ca"
	// Disable connects without TLS: only to a loopback address, for local
	// development, never to an RDS endpoint name.
	Disable Mode = "disable"
)

// ParseMode reads --tls-mode; "" is VerifyFull.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", VerifyFull:
		return VerifyFull, nil
	case VerifyCA, Disable:
		return Mode(s), nil
	}
	return "", fmt.Errorf("--tls-mode %q: use verify-full (the default), verify-ca, or disable (loopback only)", s)
}

// DefaultHandshakeTimeout bounds a TLS handshake when the caller's context
// has no earlier deadline.
const DefaultHandshakeTimeout = 10 * time.Second

// Upstream describes TLS toward one upstream server. Engines build the
// *tls.Config from it with [Upstream.Config] and turn handshake failures
// into messages with [Upstream.Explain].
type Upstream struct {
	// Bundle holds the trusted CAs. Required unless Mode is Disable.
	Bundle *Bundle
	// Mode; "" is VerifyFull.
	Mode Mode
	// Host is the endpoint name: the name tokens are signed for and, unless
	// ServerName is set, the name the certificate must carry.
	Host string
	// ServerName, when set, is the name the certificate must carry (and the
	// SNI sent), for when the endpoint name differs from the certificate's
	// (--tls-server-name).
	ServerName string
	// DialAddress is the host:port actually dialed when it is not Host (a
	// tunnel, the emulator). Only Disable looks at it: plaintext is allowed
	// only when what is dialed is a loopback address.
	DialAddress string
}

// ExpectedName is the name the server's certificate must carry.
func (u Upstream) ExpectedName() string {
	if u.ServerName != "" {
		return u.ServerName
	}
	return u.Host
}

// rdsNamePattern matches RDS endpoint names: ...REGION.rds.amazonaws.com
// in the commercial and GovCloud partitions, ...rds.REGION.amazonaws.com.cn
// in China.
var rdsNamePattern = regexp.MustCompile(`\.rds\.amazonaws\.com$|\.rds\.[a-z0-9-]+\.amazonaws\.com\.cn$|\.rds\.amazonaws\.com\.cn$`)

// IsRDSName reports whether host is an AWS RDS or Aurora endpoint name
// (instance, cluster, cluster-ro, custom, RDS Proxy): it ends in
// .rds.amazonaws.com (commercial and GovCloud) or is
// NAME.ID.rds.REGION.amazonaws.com.cn (China).
func IsRDSName(host string) bool {
	return rdsNamePattern.MatchString(strings.TrimSuffix(strings.ToLower(host), "."))
}

// IsRDSProxyName reports whether host is an RDS Proxy endpoint
// (NAME.proxy-ID.REGION.rds.amazonaws.com, or a proxy's custom endpoint
// NAME.endpoint.proxy-ID.REGION.rds.amazonaws.com). RDS Proxy serves
// certificates from AWS Certificate Manager, which chain to the Amazon
// Trust Services roots, not to the RDS CAs.
func IsRDSProxyName(host string) bool {
	if !IsRDSName(host) {
		return false
	}
	// The first label is the user's own name ("proxy-db.cluster-..." is
	// not a proxy); the proxy's id label comes after it.
	labels := strings.Split(strings.ToLower(host), ".")
	for _, label := range labels[1:] {
		if strings.HasPrefix(label, "proxy-") {
			return true
		}
	}
	return false
}

// Check refuses settings a security reviewer would refuse: an unknown
// mode, a mode other than verify-full for an RDS endpoint name, plaintext
// to anything but a loopback address. It does not look at the bundle, so a
// caller can check the settings before loading one (and need not load one
// for Disable). Config calls it too.
func (u Upstream) Check() error {
	mode := u.Mode
	if mode == "" {
		mode = VerifyFull
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return err
	}
	if u.Host == "" {
		return errors.New("upstream TLS: no endpoint host")
	}
	if mode != VerifyFull {
		for _, n := range []string{u.Host, u.ServerName} {
			if IsRDSName(n) || IsDSQLName(n) {
				return fmt.Errorf("--tls-mode %s is refused for %s: RDS and Aurora endpoints are only reached with verify-full (their certificates name the endpoint; use --tls-server-name if you dial another address)", mode, n)
			}
		}
	}
	if mode == Disable {
		target := u.Host
		if u.DialAddress != "" {
			host, _, err := net.SplitHostPort(u.DialAddress)
			if err != nil {
				return fmt.Errorf("--tls-mode disable: dial address %q: %w", u.DialAddress, err)
			}
			target = host
		}
		if !isLoopbackHost(target) {
			return fmt.Errorf("--tls-mode disable is refused for %s: without TLS the IAM token would cross the network in plaintext; disable is only for a server on a loopback address, written as 127.0.0.1, ::1 or localhost (other names, *.localhost too, may resolve anywhere). Fix: --dial-address 127.0.0.1:PORT, or use TLS", target)
		}
	}
	return nil
}

// Config returns the *tls.Config for the upstream, after [Upstream.Check]:
//
//   - verify-full: the chain must lead to a CA in the bundle and the
//     certificate must name ExpectedName. For RDS Proxy names
//     ([IsRDSProxyName]) the system roots are trusted too, since RDS Proxy
//     certificates chain to Amazon Trust Services, not to the RDS CAs.
//   - verify-ca: the chain must lead to a CA in the bundle (and the
//     certificate must be valid for server authentication); the name is not
//     checked. SNI still carries ExpectedName.
//   - disable: nil, meaning no TLS.
//
// TLS 1.2 is the floor (RDS supports 1.2 and 1.3). Failures are
// *tls.CertificateVerificationError values, which [Upstream.Explain] turns
// into messages.
func (u Upstream) Config() (*tls.Config, error) {
	if err := u.Check(); err != nil {
		return nil, err
	}
	mode := u.Mode
	if mode == "" {
		mode = VerifyFull
	}
	if mode == Disable {
		return nil, nil
	}
	if u.Bundle == nil || u.Bundle.Pool == nil {
		return nil, errors.New("upstream TLS: no CA bundle")
	}
	roots := u.Bundle.Pool
	if IsRDSProxyName(u.ExpectedName()) {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("%s is an RDS Proxy endpoint, whose certificate chains to Amazon Trust Services roots, but the system's root certificates cannot be loaded: %w", u.ExpectedName(), err)
		}
		for _, c := range u.Bundle.Certs {
			sys.AddCert(c)
		}
		roots = sys
	}
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: u.ExpectedName(),
		MinVersion: tls.VersionTLS12,
	}
	if mode == VerifyCA {
		// Go has no verify-ca: switch the built-in check off and do the
		// chain check here, name excepted. VerifyConnection runs on every
		// handshake, resumed ones included.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		}
	}
	return cfg, nil
}

// ClientConfig returns a verify-full TLS configuration for serverName
// against the bundle alone. Prefer [Upstream.Config], which also knows the
// other modes and RDS Proxy names.
func (b *Bundle) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		RootCAs:    b.Pool,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
}

// Handshake runs the client side of a TLS handshake on conn with cfg,
// bounded by ctx and by DefaultHandshakeTimeout, and returns the TLS
// connection; cfg must not be nil. For engines that start TLS themselves
// (MySQL); pgconn does its own under the login's context. Errors wrap the
// handshake's, so [Upstream.Explain] can read them.
func Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", cfg.ServerName, err)
	}
	return tc, nil
}
