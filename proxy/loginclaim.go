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
// too; none by then, and it is refused as before. An engine that holds
// its session before greeting its client (Holder: MySQL) waits so before
// the greeting instead (AwaitParked), and here as before.
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
		t, p := s.claimTurn(l.Ctx, l, h, guardKey, key, false)
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

// claimTurn is one wait, within ctx, for the first of: the login's turn
// (t, p nil), or a session left for key (p, its place in the guard given
// back). The login waits in line up to --login-wait whatever its due
// time: those ahead of it may be served by sessions too. rateOnly: for a
// token of the rate only (see waitTurn).
func (s *Settings) claimTurn(ctx context.Context, l *Login, h Handshake, guardKey, key string, rateOnly bool) (t turn, p Pooled) {
	if t, ok := s.turnNow(guardKey, rateOnly); ok {
		return t, nil // nobody waits and the turn is free: no claim, no goroutine
	}
	return s.claimWait(ctx, l, h, guardKey, key, rateOnly)
}

// claimWait is claimTurn past its fast path: a Claim on key, raced
// against the guard's wait on a goroutine of its own.
func (s *Settings) claimWait(ctx context.Context, l *Login, h Handshake, guardKey, key string, rateOnly bool) (t turn, p Pooled) {
	c := s.Pool.Claim(key)
	if c == nil { // the pool is closing
		return s.waitTurn(ctx, l, h, guardKey, false, rateOnly), nil
	}
	select {
	case p := <-c.Got(): // one was parked as it queued
		return turn{}, p
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	turns := make(chan turn, 1)
	go func() { turns <- s.waitTurn(ctx, l, h, guardKey, true, rateOnly) }()
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
// guesses: it waits for the first of a session left for key (p) and a
// token of the guard's rate for a login to guardKey (turn; the engine's
// Handshake hands it to its login as a TurnHolder, and the login waits no
// more). Only the rate is waited for, as for any MySQL login: a place
// among the logins in progress held from before the greeting would be
// held by a client that never answers it. Neither within --login-wait:
// the guard's refusal (a login_rate failure). The wait ends when the
// client goes (it sends nothing before its greeting, so anything on its
// socket means it has gone) or the proxy drains. Without a guard or a
// pool: (nil, nil, nil) at once.
func (s *Settings) AwaitParked(l *Login, key, guardKey string) (p Pooled, tt *Turn, err error) {
	if s.Guard == nil || s.Pool == nil || key == "" {
		return nil, nil, nil
	}
	if t, ok := s.turnNow(guardKey, true); ok {
		return nil, &Turn{t: t, key: guardKey}, nil // no wait, so nothing to watch
	}
	ctx, cancel := context.WithCancel(l.Ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go watchGone(ctx, cancel, l, done)
	t, p := s.claimWait(ctx, l, nil, guardKey, key, true)
	if p != nil {
		if ctx.Err() != nil && l.Ctx.Err() == nil && l.Drain.Err() == nil {
			// Handed over as the watch found the client gone: back to
			// the pool for the next one (alive looks at l.Ctx only).
			s.Pool.Put(key, p)
			return nil, nil, ctx.Err()
		}
		return p, nil, nil
	}
	if t.err != nil {
		_, err := s.tookTurn(l, t) // the refusal, told and counted
		return nil, nil, err
	}
	return nil, &Turn{t: t, key: guardKey}, nil
}

// turnNow is the login's turn taken at once when it is free (the
// guard's TryWait), as waitTurn would take it. Its callers' logins have
// no upstream open yet (awaitTurn leaves MySQL's, a Holder, out), so
// only rateOnly says whether a place among the logins in progress is
// taken too.
func (s *Settings) turnNow(guardKey string, rateOnly bool) (turn, bool) {
	leave, ok := s.Guard.TryWait(guardKey, rateOnly)
	if !ok {
		return turn{}, false
	}
	return turn{leave: leave, busy: s.Guard.Busy(guardKey)}, true
}

// goneEvery is how often a client waiting before its greeting is looked
// at (watchGone).
const goneEvery = 100 * time.Millisecond

// watchGone cancels a wait before l's client is greeted when the client
// goes (its socket has its end, or anything: it should say nothing yet)
// or the proxy starts draining, until done.
func watchGone(ctx context.Context, cancel context.CancelFunc, l *Login, done <-chan struct{}) {
	tick := time.NewTicker(goneEvery)
	defer tick.Stop()
	ticks := tick.C
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-l.Drain.Done():
			cancel()
			return
		case <-ticks:
			quiet, known := Quiet(l.Client)
			if !known {
				// This system cannot look at the socket: only the drain
				// and the wait's end are watched.
				tick.Stop()
				ticks = nil
			} else if !quiet {
				cancel()
				return
			}
		}
	}
}

// Turn is a login's turn in the guard taken before its client was greeted
// (AwaitParked), for its login (TurnHolder): the login's wait is counted
// then, as if it had waited then; a Turn not used is Dropped.
type Turn struct {
	t   turn
	key string // the guard's key it was taken for
}

// Drop gives back what an unused turn holds: nothing today, as every
// Turn is the rate's alone (AwaitParked) and its token stays spent; a
// place among the logins in progress, were one ever taken with it.
func (t *Turn) Drop() {
	if t != nil && t.t.leave != nil {
		t.t.leave()
	}
}
