package tlsca

import (
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
)

// SystemSource names the system trust store in messages.
const SystemSource = "the system's root certificates"

// SystemBundle is a bundle of this system's root certificates
// (x509.SystemCertPool: SSL_CERT_FILE and SSL_CERT_DIR are honoured), for
// upstreams whose certificates chain to public roots rather than to the
// RDS CAs: Aurora DSQL (Amazon Root CA 1). Nothing is downloaded and
// nothing is refreshed ([Trust.KeepFresh] returns at once for it): the
// system keeps its own store current.
func SystemBundle() (*Bundle, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("cannot load %s (install the ca-certificates package, or pass --ca-bundle): %w", SystemSource, err)
	}
	return &Bundle{Source: SystemSource, Pool: pool, System: true}, nil
}

// systemUnknownCAFix is the fix for a certificate the system store does
// not trust.
const systemUnknownCAFix = "Aurora DSQL certificates chain to Amazon Root CA 1, which must be in this system's trust store (install or update the ca-certificates package); if something in between intercepts TLS on purpose, pass its CA with --ca-bundle; otherwise check that --endpoint/--dial-address reach the cluster itself"

// dsqlNamePattern matches Aurora DSQL cluster endpoints: ID.dsql.REGION.on.aws.
var dsqlNamePattern = regexp.MustCompile(`^[a-z0-9]+\.dsql\.[a-z0-9-]+\.on\.aws$`)

// IsDSQLName reports whether host is an Aurora DSQL cluster endpoint
// name, which like an RDS name is only reached with verify-full.
func IsDSQLName(host string) bool {
	return dsqlNamePattern.MatchString(strings.TrimSuffix(strings.ToLower(host), "."))
}
