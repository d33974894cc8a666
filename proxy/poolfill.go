package proxy

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"
)

// The pool's minimum (PoolOptions.MinIdlePerKey): once a client of a key
// has left, the pool keeps that many sessions parked for the key, logging
// in new ones in the background as clients take them, as a reset fails,
// or as the reaper ends them (pool_max_lifetime recycles them so), so
// that a burst of clients finds sessions ready without any client having
// left one. A key nobody has taken or left a session of for the idle
// timeout is kept no longer.

// Keep has the pool keep its minimum parked for key, logging in with
// fill; a later Keep replaces fill (the login of the latest client of
// the key). It does nothing without a minimum.
func (p *Pool) Keep(key string, fill Fill) {
	if p == nil || p.o.MinIdlePerKey == 0 || fill == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	k := p.keys[key]
	if k == nil {
		k = &poolKey{ready: make(chan struct{})}
		p.keys[key] = k
	}
	k.fill, k.used = fill, time.Now()
	k.fillGen++
	p.topUpLocked(key, k)
}

// topUpLocked starts the fills key is short of its minimum, within the
// pool's limits; after a failed fill it waits for its pause (the
// reaper's next tick tries again). p.mu is held.
func (p *Pool) topUpLocked(key string, k *poolKey) {
	if p.closed || k.fill == nil || time.Now().Before(k.fillAfter) {
		return
	}
	need := p.o.MinIdlePerKey - len(k.parked) - k.resetting - k.filling
	need = min(need, p.o.MaxIdle-p.idle-p.reset-p.filling)
	for range max(need, 0) {
		k.filling++
		p.filling++
		p.fills.Add(1)
		go p.fillOne(key, k.fill, k.fillGen, time.Now())
	}
}

// fillOne logs in one session for key and parks it as it is: a fresh
// login needs no reset. gen is the Keep that fill came from, start when
// the fill was decided (a DropHost since then drops it too).
func (p *Pool) fillOne(key string, fill Fill, gen int, start time.Time) {
	defer p.fills.Done()
	s, err := fill(p.fillCtx)
	p.mu.Lock()
	p.filling--
	k := p.keys[key] // kept while k.filling > 0
	k.filling--
	ok := err == nil && !p.closed &&
		!p.droppedSince(s, start) && // its instance's sessions were closed meanwhile (a writer change)
		p.parkLocked(key, k, s, false) // within the limits, or to a claim
	if ok {
		k.fillPause = 0
		close(k.ready)
		k.ready = make(chan struct{})
	}
	switch {
	case errors.Is(err, ErrNotRouted):
		// The instance is no longer where the key's clients go (a writer
		// demoted): its minimum is kept no more. A client that parks a
		// session of the key again asks for it anew (Keep), and a Keep
		// since then is not undone.
		if k.fillGen == gen {
			k.fill = nil
		}
	case err != nil:
		// Not at once again: a down upstream or a refused login is not
		// hammered. The reaper's tick retries.
		k.fillPause = min(max(2*k.fillPause, time.Second), 30*time.Second)
		k.fillAfter = time.Now().Add(k.fillPause)
	}
	p.gcKey(key, k)
	p.mu.Unlock()
	if errors.Is(err, ErrNotRouted) {
		p.o.Logger.Debug("the pool's minimum is no longer kept for an Aurora instance clients are no longer routed to", "err", err)
		return
	}
	if err != nil {
		if p.fillCtx.Err() == nil {
			p.o.Logger.Warn("cannot log in a session ahead for the pool's minimum; clients log in their own meanwhile", "err", err)
		}
		return
	}
	if !ok {
		s.Discard()
	}
}

// Filling is how many logins for the minimum are in progress.
func (p *Pool) Filling() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.filling
}

// fillDeadline bounds one fill's login when the caller gives none.
const fillDeadline = 30 * time.Second

// fillContext is ctx bounded by d (fillDeadline when d is 0).
func fillContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = fillDeadline
	}
	return context.WithTimeout(ctx, d)
}

// Relogger is a Reuser that can log in again as its client's login did,
// without the client (Postgres: the same user, database and startup
// parameters; MySQL: the same handshake answer, on a connection whose
// greeting the session keeps): the pool's minimum is kept with it (see
// Keep).
type Relogger interface {
	// Relogin returns a login as this client's, with a user and a token,
	// that outlives the client; its session is parked as it is.
	Relogin() func(ctx context.Context, user, token string) (Pooled, error)
}

// InstanceRelogger is a Relogger that can also log in again to the
// Aurora instance its client was routed to: the pool's minimum behind a
// cluster endpoint is kept with it.
type InstanceRelogger interface {
	Relogger
	// ReloginAt is Relogin to the instance d.
	ReloginAt(d Destination) func(ctx context.Context, user, token string) (Pooled, error)
}

// ErrNotRouted is a fill for an Aurora instance that clients of its key
// are no longer routed to (the writer changed): the pool stops keeping
// the key's minimum.
var ErrNotRouted = errors.New("clients are no longer routed to this instance")

// keep has the pool keep its minimum for h's key (see Pool.Keep): each
// login for it waits for its turn in the login-rate guard like a
// client's, then signs a token for user, within the connect timeout. A
// routed client's key is kept on the instance it was routed to, while
// the router still sends such clients there.
func (s *Settings) keep(l *Login, h Handshake, key, user string) {
	if s.Pool == nil || s.Pool.o.MinIdlePerKey == 0 {
		return
	}
	t := l.target
	host, port := t.Host, t.Port
	var login func(ctx context.Context, user, token string) (Pooled, error)
	var routed func(Pooled) bool // nil: not routed
	if l.routedTo != "" {
		rl, ok := h.(InstanceRelogger)
		if !ok || l.route == nil || s.Router == nil {
			return
		}
		d, writer, r := l.route.dest, l.route.writer, s.Router
		host, port, login = d.Host, d.Port, rl.ReloginAt(d)
		routed = func(p Pooled) bool {
			if !r.routesTo(d.Host, writer) {
				return false
			}
			ro, ok := p.(ReadOnlySession)
			return p == nil || !writer || !ok || !ro.ReadOnly()
		}
	} else {
		rl, ok := h.(Relogger)
		if !ok {
			return
		}
		login = rl.Relogin()
	}
	if routed != nil && !routed(nil) {
		return // a session cut by a writer change, say: nothing to keep there
	}
	guardKey := net.JoinHostPort(host, strconv.Itoa(port))
	s.Pool.Keep(key, func(ctx context.Context) (Pooled, error) {
		if routed != nil && !routed(nil) {
			return nil, ErrNotRouted
		}
		if s.Guard != nil {
			leave, _, err := s.Guard.Wait(ctx, guardKey)
			if err != nil {
				return nil, err
			}
			defer leave()
		}
		ctx, cancel := fillContext(ctx, s.ConnectTimeout)
		defer cancel()
		tok, err := s.Tokens.Token(ctx, host, port, s.SigningRegion(), user)
		if err != nil {
			return nil, err
		}
		p, err := login(ctx, user, tok)
		if err == nil && routed != nil && !routed(p) {
			// Demoted while it logged in: not a session for the key.
			p.Discard()
			return nil, ErrNotRouted
		}
		return p, err
	})
}
