package proxy

import (
	"context"
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
		go p.fillOne(key, k.fill)
	}
}

// fillOne logs in one session for key and parks it as it is: a fresh
// login needs no reset.
func (p *Pool) fillOne(key string, fill Fill) {
	defer p.fills.Done()
	s, err := fill(p.fillCtx)
	p.mu.Lock()
	p.filling--
	k := p.keys[key] // kept while k.filling > 0
	k.filling--
	ok := err == nil && !p.closed && len(k.parked)+k.resetting < p.o.MaxIdlePerKey && p.idle+p.reset < p.o.MaxIdle
	if ok {
		k.parked = append(k.parked, parked{s: s, since: time.Now()})
		p.idle++
		k.fillPause = 0
		close(k.ready)
		k.ready = make(chan struct{})
	}
	if err != nil {
		// Not at once again: a down upstream or a refused login is not
		// hammered. The reaper's tick retries.
		k.fillPause = min(max(2*k.fillPause, time.Second), 30*time.Second)
		k.fillAfter = time.Now().Add(k.fillPause)
	}
	p.gcKey(key, k)
	p.mu.Unlock()
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

// keep has the pool keep its minimum for h's key (see Pool.Keep): each
// login for it waits for its turn in the login-rate guard like a
// client's, then signs a token for user, within the connect timeout.
func (s *Settings) keep(l *Login, h Handshake, key, user string) {
	rl, ok := h.(Relogger)
	if !ok || s.Pool == nil || s.Pool.o.MinIdlePerKey == 0 {
		return
	}
	login, t := rl.Relogin(), l.target
	s.Pool.Keep(key, func(ctx context.Context) (Pooled, error) {
		if s.Guard != nil {
			leave, _, err := s.Guard.Wait(ctx, GuardKey(t))
			if err != nil {
				return nil, err
			}
			defer leave()
		}
		ctx, cancel := fillContext(ctx, s.ConnectTimeout)
		defer cancel()
		tok, err := s.Tokens.Token(ctx, t.Host, t.Port, s.SigningRegion(), user)
		if err != nil {
			return nil, err
		}
		return login(ctx, user, tok)
	})
}
