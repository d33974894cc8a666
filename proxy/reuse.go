package proxy

import (
	"context"
	"time"
)

// Reuser is what a Handshake adds for session reuse (Settings.Pool): the
// key of the parked sessions its client may take over, and how to hand
// one over.
type Reuser interface {
	// PoolKey names the sessions this client may take over: everything
	// its login would have set that a reset cannot change. "": none.
	PoolKey() string
	// Adopt readies a parked session for this client (Postgres: SET its
	// application_name) and returns it as the client's Session, to
	// Finish as if it had just logged in. An error discards it.
	Adopt(ctx context.Context, p Pooled) (Session, error)
}

// Parkable is a Session that may be parked after its relay.
type Parkable interface {
	Session
	Pooled
	// Clean says whether the client left it cleanly (see Tracker).
	Clean() bool
}

// Holder is a Reuser that takes its parked session itself, before the
// core asks for one (MySQL: the client's greeting must carry the
// connection id of the very session it ends up on, so the session is
// chosen before the client has said who it is). The core then never
// takes one from the pool for it.
type Holder interface {
	// Held is the parked session taken for this client, readied as
	// Adopt readies one, or nil: log in. at is the Aurora instance
	// (host:port) the router sent this client's login to, "" when not
	// routed: a session held for another instance (the writer changed, or
	// another reader had fewer sessions by then) is closed, not handed
	// over, and nil returned.
	Held(at string) Session
}

// ReuseObserver hears about session reuse (metrics); an Observer may
// implement it. event is one of the ReuseEvents.
type ReuseObserver interface {
	SessionReuse(event string)
}

// The session-reuse events, as metrics label them.
const (
	ReuseTaken     = "taken"     // a client got a parked session: no token, no login
	ReuseParked    = "parked"    // a session its client left cleanly went to the pool
	ReuseDiscarded = "discarded" // a session its client did not leave cleanly was closed
	ReuseDead      = "dead"      // a parked session could not be handed over (it died parked) and was closed
)

// ReuseEvents are every event a ReuseObserver hears.
var ReuseEvents = []string{ReuseTaken, ReuseParked, ReuseDiscarded, ReuseDead}

// reuseEvent tells the observer, if it listens.
func (s *Settings) reuseEvent(event string) {
	if o, ok := s.Observer.(ReuseObserver); ok {
		o.SessionReuse(event)
	}
}

// reuseWait is how long a client waits for a session being reset for its
// key rather than logging in: a reset is one round trip, a login several
// and a token.
const reuseWait = time.Second

// adoptTimeout bounds handing over one parked session: one round trip
// on an idle session. A server that does not answer it in time (a
// backend stopped, an address black-holed by a failover) costs the
// client this, not the connect timeout, before the next parked session
// or a login.
const adoptTimeout = 2 * time.Second

// AdoptTimeout bounds handing one parked session over (adoptTimeout,
// within the connect timeout): the Postgres adoption here and the MySQL
// engine's COM_PING before a greeting use the same bound.
func (s *Settings) AdoptTimeout() time.Duration { return min(s.ConnectTimeout, adoptTimeout) }

// reuse hands the client a parked session for its key, or nil (log in).
// A session that cannot be adopted (it died while parked) is discarded
// and the next one tried.
func (s *Settings) reuse(l *Login, h Handshake) Session {
	r, ok := h.(Reuser)
	if s.Pool == nil || !ok {
		return nil
	}
	if hd, ok := h.(Holder); ok {
		sess := hd.Held(l.routedTo)
		if sess != nil {
			l.Log = l.Log.With("session_reused", true)
			s.reuseEvent(ReuseTaken)
		}
		return sess
	}
	key := l.poolKey(r)
	if key == "" {
		return nil
	}
	for range 3 {
		p := s.Pool.Get(l.Ctx, key, reuseWait)
		if p == nil {
			return nil
		}
		if sess := s.adopt(l, r, key, p); sess != nil {
			return sess
		}
		if l.Ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// adopt hands the parked session p (of key) over to l's client, or
// discards it (it died while parked) and returns nil. A session taken for
// a client gone meanwhile goes back to the pool unused (Put: reset once
// more, which also checks it, then parked or handed to a claim).
func (s *Settings) adopt(l *Login, r Reuser, key string, p Pooled) Session {
	if l.Ctx.Err() != nil {
		s.Pool.Put(key, p)
		return nil
	}
	ctx, cancel := context.WithTimeout(l.Ctx, s.AdoptTimeout())
	sess, err := r.Adopt(ctx, p)
	cancel()
	if err != nil {
		l.Log.Info("parked session not reused", "err", err)
		s.reuseEvent(ReuseDead)
		p.Discard()
		return nil
	}
	l.Log = l.Log.With("session_reused", true)
	s.reuseEvent(ReuseTaken)
	return sess
}

// park gives a session whose client left cleanly to the pool, after
// forgetting what the client held on it (its cancel key: h.Close); any
// other session is closed. A client that leaves has its key kept at the
// pool's minimum (keep), cleanly or not.
func (s *Settings) park(ctx context.Context, l *Login, h Handshake, sess Session) {
	pk, ok := sess.(Parkable)
	if s.Pool == nil || !ok {
		return
	}
	r, ok := h.(Reuser)
	if !ok || ctx.Err() != nil || l.poolKey(r) == "" {
		pk.Discard()
		return
	}
	key := l.poolKey(r)
	if pk.Clean() {
		h.Close()
		s.Pool.Put(key, pk)
		s.reuseEvent(ReuseParked)
	} else {
		pk.Discard()
		s.reuseEvent(ReuseDiscarded)
	}
	s.keep(l, h, key, h.Who().User) // after Put: its session counts toward the minimum
}

// poolKey is the key of the sessions l's client may take over: the
// engine's, and for a routed login the Aurora instance too, so that a
// client the router sent to the writer never gets a reader's session
// (nor one of a writer since demoted).
func (l *Login) poolKey(r Reuser) string {
	return InstanceKey(r.PoolKey(), l.routedTo)
}

// InstanceKey is the pool key of an engine's key for sessions on the
// Aurora instance at (host:port): the key as is when at is "" (not
// routed) or the key is "" (not reused). An engine that takes its parked
// session itself (Holder) names it so.
func InstanceKey(key, at string) string {
	if key == "" || at == "" {
		return key
	}
	return key + "\x00instance=" + at
}
