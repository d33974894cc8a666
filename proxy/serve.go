package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Serve drives one client connection through e, the same way for every
// engine: admit (counted, deadlines, the handshake cap; e calls Admit for
// the connection limits) -> e reads the client's handshake and says who it
// is -> a token -> e logs in upstream -> e finishes the client's
// handshake -> relay -> one log line and metrics. Every refusal on the way
// goes through refuse. It closes client.
func (s *Settings) Serve(ctx context.Context, client net.Conn, e Engine) {
	defer client.Close()
	l := s.BeginLogin(ctx, client)
	defer l.End()
	l.settings, l.engine, l.target = s, e, e.Target()
	l.Log = l.Log.With("client", client.RemoteAddr().String())
	// The handshake runs on a goroutine of its own (see onFreshStack),
	// so that the session's long-lived goroutines keep small stacks.
	var o opened
	onFreshStack(func() { o = s.open(ctx, l, e) })
	h, sess, up := o.h, o.sess, o.up
	defer h.Close()
	if sess == nil {
		return
	}
	defer sess.Upstream().Close()
	defer l.route.done()
	if !o.ok {
		return
	}
	conn := h.Client()
	l.Relaying(conn, up)
	if l.Log.Enabled(l.Ctx, slog.LevelDebug) { // the address is formatted only when it is logged
		l.Log.Debug("connected", "upstream_addr", sess.Upstream().RemoteAddr().String(), "handshake", time.Since(l.Start))
	}
	s.Observer.LoggedIn(time.Since(l.Start), l.upstream)
	RelayAndLog(ctx, l.Log, conn, up, l.Start, RelayOptions{IdleTimeout: s.IdleTimeout, Observer: s.Observer, Farewell: sess.Farewell()})
	s.park(ctx, l, h, sess) // session reuse: a session left clean goes to the pool
}

// login builds a token for user and has h log in with it, within the
// connect timeout (per attempt, when a paused upstream is waited for: see
// Resume).
func (s *Settings) login(l *Login, h Handshake, user string) (Session, error) {
	if s.Router != nil {
		// An Aurora cluster: the router picks the instance, and a parked
		// session is taken only from those on it (a writer change drops
		// the ones on the instances it touched). Until its topology can be
		// read, the endpoint's DNS.
		sess, err := s.routedLogin(l, h, user)
		if !errors.Is(err, errTopologyUnread) {
			return sess, err
		}
	}
	if sess := s.reuse(l, h); sess != nil {
		return sess, nil // a parked session: no token, no login
	}
	t := l.target
	// The guard on the login rate, or a session left meanwhile.
	release, sess, err := s.awaitTurn(l, h, GuardKey(t))
	if err != nil || sess != nil {
		return sess, err
	}
	defer release()
	tok, err := s.Tokens.Token(l.Ctx, t.Host, t.Port, s.SigningRegion(), user)
	if err != nil {
		return nil, err
	}
	// Held while a paused upstream resumes (resume.go), each attempt
	// within the connect timeout and retried once on throttling
	// (loginwait.go).
	return s.holdLogin(l, user, func(ctx context.Context) (Session, error) { return s.loginWithRetry(ctx, l, h, user, tok) })
}

// explain turns a failed login into what the client is told: the
// engine-independent failures first, then the engine's own, else the error
// as it is.
func (s *Settings) explain(ctx context.Context, e Engine, user string, err error) *failure.Failure {
	f := ExplainLogin(ctx, e, user, err)
	if f.Reason == failure.UpstreamAuth && s.Follow != nil {
		s.Follow.Rejected() // the region may have moved (a global database)
	}
	return f
}

// ExplainLogin is how every failed login is explained, by the proxy and by
// rdsiam's Explain for a driver's own login: the engine-independent
// failures first, then the engine's own, else the error as it is.
func ExplainLogin(ctx context.Context, e Engine, user string, err error) *failure.Failure {
	if f, ok := failure.As(err); ok {
		return f
	}
	t := e.Target()
	t.User = user
	if f := ExplainLoginFailure(err, t); f != nil {
		return f
	}
	if f := e.Explain(ctx, user, err); f != nil {
		return f
	}
	return failure.Wrap(failure.Upstream, err, fmt.Sprintf("cannot log in to the upstream %s: %s", t.Host, err), UnexplainedFix)
}

// Explain explains a failure of the upstream that happens inside an
// engine's Open (MySQL dials for the server's greeting there) as a failed
// login is explained.
func (l *Login) Explain(user string, err error) error {
	if l.Evicted() != nil {
		return err
	}
	return l.settings.explain(l.Ctx, l.engine, user, err)
}

// refuse is the one sink for a connection that ends before the relay: it
// counts it, logs it, and has the engine tell the client in its protocol.
// An eviction is told as such whatever err is; an error that is not a
// failure is a client gone or too slow (only logged), or, during a
// shutdown, told that the proxy is shutting down.
func (l *Login) refuse(h Handshake, err error) {
	if why := l.Evicted(); why != nil {
		// Evictions come in floods: the gates log summaries.
		l.obs.Refused(failure.Evicted)
		l.Log.Debug("connection evicted", "cause", err)
		tell(h, why, time.Second)
		return
	}
	f, ok := failure.As(err)
	if !ok {
		shutdown, reason := Unexplained(l.Drain, l.Log, err, l.Start)
		if !shutdown {
			l.obs.Refused(reason)
			return
		}
		f = ShutdownFailure(err)
	}
	attrs := []any{"reason", f.Reason, "message", f.Text()}
	if f.Err != nil {
		attrs = append(attrs, "cause", f.Err.Error())
	}
	l.obs.Refused(f.Reason)
	l.Log.Warn("connection refused", attrs...)
	tell(h, f, 5*time.Second)
}

// tell writes f to the client within d, then lingers so that it arrives.
func tell(h Handshake, f *failure.Failure, d time.Duration) {
	c := h.Client()
	c.SetWriteDeadline(time.Now().Add(d))
	if h.Fail(f) == nil {
		LingerClose(c)
	}
}

// refuseTimeout bounds reading a refused client's opening and telling it
// why: long enough for any real client's startup message, short enough
// that a flood of silent ones costs little.
const refuseTimeout = time.Second

// Refuse turns away a client the server's handshake cap has no place for
// (see Server.LimitHandshakes), counted and told through e like any
// refusal; r.Drop closes it at once. It closes client.
func (s *Settings) Refuse(ctx context.Context, client net.Conn, r Refusal, e Engine) {
	defer client.Close()
	s.Observer.Accepted()
	defer s.Observer.Ended()
	if r.Drop {
		s.Observer.Refused(failure.HandshakeLimit)
		s.Logger.Debug("connection dropped: too many connections logging in, and too many being refused", "client", client.RemoteAddr())
		return
	}
	log := s.Logger.With("client", client.RemoteAddr().String())
	client.SetDeadline(time.Now().Add(refuseTimeout))
	h, err := e.Refusing(ctx, client, log)
	if handled, ok := errors.AsType[*Handled](err); ok {
		s.Observer.Refused(handled.Reason)
		return
	}
	s.Observer.Refused(failure.HandshakeLimit)
	if err != nil {
		log.Debug("connection refused at accept: too many connections logging in; it sent no opening in time", "err", err)
		return
	}
	log.Debug("connection refused at accept: too many connections logging in")
	tell(h, r.Failure, refuseTimeout)
}
