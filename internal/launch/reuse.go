package launch

import (
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// newPool is the session reuse pool c asks for, or nil: reuse is off, or
// the engine is one that does not reuse sessions, which the log says.
func newPool(c Config, log *slog.Logger) *proxy.Pool {
	if !c.SessionReuse {
		return nil
	}
	if c.Engine != config.Postgres && c.Engine != config.MySQL {
		log.Warn("session_reuse is on but not supported for this engine yet: every client logs in", "engine", c.Engine.String())
		return nil
	}
	r := c.Reuse
	return proxy.NewPool(proxy.PoolOptions{IdleTimeout: time.Duration(r.PoolIdleTimeout), MaxLifetime: time.Duration(r.PoolMaxLifetime),
		MaxIdlePerKey: r.PoolMaxIdlePerKey, MaxIdle: r.PoolMaxIdle, ResetTimeout: time.Duration(c.ConnectTimeout), Logger: log,
		MinIdlePerKey: r.PoolMinIdle})
}

// Pool is the running proxy's session reuse pool (nil: off), for its
// counters.
func (r *Running) Pool() *proxy.Pool { return r.pool }
