package launch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// KeepTrustFresh reloads the CA bundle every interval (0: tlsca's default
// age; negative: never) until ctx ends, as a running proxy does, for a
// program that logs in itself (rdsiam). It returns at once with
// --tls-mode disable.
func (u *Upstream) KeepTrustFresh(ctx context.Context, interval time.Duration) {
	if interval == 0 {
		interval = tlsca.DefaultMaxAge
	}
	if u.TLS.Mode == tlsca.Disable || interval < 0 || u.Trust == nil {
		return
	}
	u.Trust.KeepFresh(ctx, u.bundle, interval)
}

// Explain turns a failed login to this upstream as user into the failure
// the proxy would tell its client for the same fault: the very explainers
// the proxy's connections go through (proxy.ExplainLogin with this
// upstream's engine), for logins a program makes itself with a driver
// (rdsiam). The engine is built only to explain; nothing listens.
func (u *Upstream) Explain(ctx context.Context, user string, err error, log *slog.Logger) *failure.Failure {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, buildErr := newEngine(u, log)
	e, ok := h.handler.(proxy.Engine)
	if buildErr != nil || !ok {
		return failure.Wrap(failure.Upstream, err, fmt.Sprintf("cannot log in to the upstream %s: %s", u.Endpoint.Host, err), proxy.UnexplainedFix)
	}
	return proxy.ExplainLogin(ctx, e, user, err)
}
