package launch

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/dsql"
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

// newDSQL builds the Aurora DSQL engine for up.
func newDSQL(up *Upstream, s proxy.Settings, log *slog.Logger) (proxy.Handler, error) {
	c := up.Config
	action, err := config.ParseDSQLAction(c.DSQLAction)
	if err != nil {
		return nil, fmt.Errorf("--dsql-action %w", err)
	}
	if _, _, ok := authtoken.DSQLCluster(up.Endpoint.Host); !ok {
		log.Warn("the endpoint is not an Aurora DSQL cluster name (ID.dsql.REGION.on.aws): tokens are signed for it as given", "endpoint", up.Endpoint.Host)
	}
	log.Info("Aurora DSQL: tokens for DbConnectAdmin or DbConnect by role, every login to the database postgres, sessions end after the session limit",
		"dsql_action", string(action), "session_limit", c.SessionLimit().String())
	// DSQL takes 100 new connections a second per cluster (53400 past
	// it): the core's login-rate guard, keyed by the cluster's host:port,
	// shapes them under that, at 90 a second with a burst of 100 [choice:
	// a tenth of headroom for other clients of the cluster].
	if s.Guard != nil {
		key := proxy.GuardKey(proxy.Target{Host: up.Endpoint.Host, Port: up.Endpoint.Port})
		l := s.Guard.Limits(key)
		l.Rate, l.Burst = dsql.LoginRate, dsql.LoginBurst
		s.Guard.Limit(key, l)
	}
	return dsql.New(dsql.Config{Upstream: up.PostgresUpstream(), Settings: s, Signer: up.Tokens,
		Admin: action.Admin, SessionLimit: c.SessionLimit()})
}

// dsqlToken signs a DSQL token for user with the upstream's action.
func (u *Upstream) dsqlToken(ctx context.Context, user string) (string, error) {
	action, err := config.ParseDSQLAction(u.Config.DSQLAction)
	if err != nil {
		return "", fmt.Errorf("--dsql-action %w", err)
	}
	return u.Tokens.DSQLToken(ctx, u.Endpoint.Host, u.Region, action.Admin(user))
}
