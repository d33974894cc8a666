package launch

import (
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// holdForResume sets up a pausable upstream's logins (resume_wait): they
// are held while it resumes (proxy.Resume), and the handshake timeout,
// which bounds a client's whole login, grows by the wait, so that a
// client held for a resume is not cut by its own deadline. MySQL's wait
// for a place among the unanswered greetings grows the same way (see
// mysql.Proxy); the first-packet clock does not run while a client is
// held (Postgres: the client has spoken; MySQL: it is not yet greeted).
func holdForResume(c Config, s *proxy.Settings, log *slog.Logger) {
	if !c.Pausable() {
		return
	}
	wait := time.Duration(c.ResumeWait)
	s.Resume = proxy.NewResume(wait)
	base := s.HandshakeTimeout
	if base == 0 {
		base = 30 * time.Second // proxy.Settings' default
	}
	s.HandshakeTimeout = base + wait
	log.Info("pausable upstream (resume_wait): logins are held while it resumes, and nothing of the proxy's own reaches it while idle; handshake_timeout raised by the wait",
		"resume_wait", wait, "handshake_timeout", s.HandshakeTimeout)
}

// Pausable says the upstream may pause (resume_wait is set): nothing of
// the proxy's own (readiness checks, pre-warmed or parked sessions,
// topology polling) may reach it while idle.
func (r *Running) Pausable() bool { return r.up.Config.Pausable() }
