package proxy

import (
	"context"
	"time"
)

// awaitTurn waits for a login's turn in the guard (awaitLoginFor) or,
// with session reuse, for a session a client of the same key leaves
// meanwhile, whichever comes first (a Claim, poolclaim.go): the session
// is then the client's (sess), with no token and no login. Such a login
// waits in the guard's line until --login-wait, not refused at once when
// its token would come later: those ahead of it may leave with sessions
// too; none by then, and it is refused as before. An engine
// that holds its session before greeting its client (Holder: MySQL) logs
// in as before.
func (s *Settings) awaitTurn(l *Login, h Handshake, guardKey string) (release func(), sess Session, err error) {
	r, ok := h.(Reuser)
	_, holder := h.(Holder)
	if s.Guard == nil || s.Pool == nil || !ok || holder || l.poolKey(r) == "" {
		release, err := s.awaitLoginFor(l, h, guardKey)
		return release, nil, err
	}
	key := l.poolKey(r)
	start := time.Now()
	for range 3 {
		t, p := s.claimTurn(l, h, guardKey, key)
		if p == nil {
			release, err := s.tookTurn(l, t)
			return release, nil, err
		}
		if sess := s.adopt(l, r, key, p); sess != nil {
			l.Log.Debug("took a session left while waiting for a login's turn", "waited", time.Since(start).Round(time.Millisecond))
			return nil, sess, nil
		}
		if err := l.Ctx.Err(); err != nil {
			return nil, nil, err // the client has gone
		}
	}
	// Sessions that died parked, three times: a login, in turn.
	release, err = s.awaitLoginFor(l, h, guardKey)
	return release, nil, err
}

// claimTurn is one wait for the first of: the login's turn (t, p nil),
// or a session left for key (p, its place in the guard given back). The
// login waits in line up to --login-wait whatever its due time: those
// ahead of it may be served by sessions too.
func (s *Settings) claimTurn(l *Login, h Handshake, guardKey, key string) (t turn, p Pooled) {
	c := s.Pool.Claim(key)
	if c == nil { // the pool is closing
		return s.waitTurn(l.Ctx, l, h, guardKey, false), nil
	}
	select {
	case p := <-c.Got(): // one was parked as it queued
		return turn{}, p
	default:
	}
	ctx, cancel := context.WithCancel(l.Ctx)
	defer cancel()
	turns := make(chan turn, 1)
	go func() { turns <- s.waitTurn(ctx, l, h, guardKey, true) }()
	select {
	case t = <-turns:
	case p = <-c.Got():
		cancel()
		// The wait ends at once now; a place it took meanwhile goes
		// back (a token of the rate it took stays spent).
		if t := <-turns; t.err == nil {
			t.leave()
		}
		return turn{}, p
	}
	if p = c.Withdraw(); p != nil && t.err == nil {
		t.leave() // both at once: the session, and the place goes back
	}
	return t, p
}

// AwaitParked is awaitTurn for an engine that takes its parked session
// before it greets its client (a Holder: MySQL, whose client is greeted
// with the connection id of the session it ends up on), for the key it
// guesses: when none is parked, it waits for the first of a session left
// for key (p) and a token of the guard's rate for a login to guardKey
// (release; the engine's Handshake then hands it over as a TurnHolder,
// and its login waits no more). Only the rate is waited for, as for any
// MySQL login: a place among the logins in progress held from before the
// greeting would be held by a client that never answers it. Neither
// within --login-wait: the guard's refusal (a login_rate failure).
// Without a guard or a pool, at once: (nil, a no-op, nil).
func (s *Settings) AwaitParked(l *Login, key, guardKey string) (p Pooled, release func(), err error) {
	if s.Guard == nil || s.Pool == nil || key == "" {
		return nil, func() {}, nil
	}
	t, p := s.claimTurn(l, rateOnly{by: time.Now().Add(s.Guard.MaxWait())}, guardKey, key)
	if p != nil {
		return p, nil, nil
	}
	release, err = s.tookTurn(l, t)
	return nil, release, err
}

// rateOnly is the Handshake-to-be of a login whose turn is waited for
// before its client is greeted (AwaitParked): it waits for the rate only
// (UpstreamWaiting), until by.
type rateOnly struct {
	Handshake
	by time.Time
}

func (r rateOnly) LoginBy() time.Time { return r.by }
