package launch

import (
	"context"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// systemRoots reports whether the upstream's TLS trusts the system's
// roots: an Aurora DSQL cluster (its certificates chain to Amazon Root CA
// 1, not to the RDS CAs) unless a bundle is named (--ca-bundle, or a
// download asked for by URL or region: tests and interception proxies).
func (u *Upstream) systemRoots() bool {
	c := u.Config
	return c.Engine == config.DSQL && c.CABundle == "" && c.CABundleURL == "" && c.CABundleRegion == ""
}

// systemBundle loads the system's roots in place of tlsca.Load.
func systemBundle(context.Context, tlsca.Options) (*tlsca.Bundle, error) {
	return tlsca.SystemBundle()
}
