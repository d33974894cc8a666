package proxy

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// opened is how a client's handshake ended (see open): h is always set;
// sess (and up, the connection the relay writes to) once the upstream
// login succeeded, to be closed by the caller; ok once the client is
// greeted and the session may be relayed.
type opened struct {
	h    Handshake
	sess Session
	up   net.Conn
	ok   bool
}

// open takes a client from its opening to a greeted session: e reads the
// client's handshake and says who it is, a token, e logs in upstream, e
// finishes the client's handshake. A refusal on the way goes through
// refuse. Serve runs it on a goroutine of its own.
func (s *Settings) open(ctx context.Context, l *Login, e Engine) opened {
	h, err := e.Open(l)
	o := opened{h: h}
	if err != nil {
		var handled *Handled
		if errors.As(err, &handled) {
			s.Observer.Refused(handled.Reason)
			return o
		}
		l.refuse(h, err)
		return o
	}
	who := h.Who()
	l.Log = l.Log.With(append([]any{"user", who.User, "database", who.Database}, who.Attrs...)...)

	loginStart := time.Now()
	sess, err := s.login(l, h, who.User)
	l.upstream += time.Since(loginStart) // token, dial, TLS, login
	if err != nil {
		if ctx.Err() == nil && l.Evicted() == nil {
			err = s.explain(l.Ctx, e, who.User, err)
		} // else cut by shutdown or evicted: the sink says so
		l.refuse(h, err)
		return o
	}
	o.sess = sess
	o.up = l.route.follow(sess.Upstream()) // a routed session is cut if its writer is demoted
	if ctx.Err() != nil {
		// The drain deadline passed during the login: a greeting now would
		// be followed by a dead socket.
		l.refuse(h, ctx.Err())
		return o
	}
	if err := h.Finish(sess); err != nil {
		if _, ok := failure.As(err); ok {
			l.refuse(h, err)
			return o
		}
		s.Observer.Refused(failure.ClientGone)
		l.Log.Info("client went away during login", "err", err)
		return o
	}
	o.ok = true
	return o
}
