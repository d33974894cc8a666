package launch

import (
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// NewLoginGuard is the guard on the IAM login rate the serving settings
// describe (login_rate, login_burst, max_logins_in_progress, login_wait),
// or nil when they set no limit at all.
func NewLoginGuard(s config.Serving) *proxy.LoginGuard {
	if s.LoginRate <= 0 && s.MaxLoginsInProgress <= 0 {
		return nil
	}
	return proxy.NewLoginGuard(proxy.LoginLimits{Rate: float64(s.LoginRate), Burst: s.LoginBurst, MaxInProgress: s.MaxLoginsInProgress}, time.Duration(s.LoginWait))
}

// loginGuard is c's guard: the one shared by the process's upstreams, else
// one of its own.
func loginGuard(c Config) *proxy.LoginGuard {
	if c.Guard != nil {
		return c.Guard
	}
	return NewLoginGuard(c.Serving)
}

// prewarm is how many upstream connections c keeps ready, and their age
// limit. Hook for endpoints that may pause (issue 17's resume_wait > 0,
// not in the settings yet): they must get 0 here, so that the proxy sends
// nothing of its own to an idle upstream and it can pause.
func prewarm(c Config) (int, time.Duration) {
	if c.Pausable() {
		// A connection of the proxy's own wakes a paused cluster and
		// keeps it from pausing.
		return 0, 0
	}
	return c.Prewarm, time.Duration(c.PrewarmMaxAge)
}

// warmer is an engine that keeps upstream connections ready.
type warmer interface {
	StartWarm()
	StopWarm()
}

// startWarm starts h's pre-warmed connections, once it serves; the
// function returned stops them.
func startWarm(h proxy.Handler) func() {
	w, ok := h.(warmer)
	if !ok {
		return func() {}
	}
	w.StartWarm()
	return w.StopWarm
}
