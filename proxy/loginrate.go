package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of a LoginGuard: under RDS's advice of about 200 new IAM logins
// a second per instance, with room for a small burst (a pool filling up),
// and a wait that a client's usual connect timeout still covers.
const (
	DefaultLoginRate           = 150
	DefaultLoginBurst          = 20
	DefaultLoginWait           = 10 * time.Second
	DefaultMaxLoginsInProgress = 32
)

// LoginLimits shape the IAM logins to one endpoint.
type LoginLimits struct {
	// Rate is the logins a second; 0: no rate limit.
	Rate float64
	// Burst is how many may go at once after a quiet spell (at least 1
	// when Rate is set).
	Burst int
	// MaxInProgress caps the logins to the endpoint in progress at once
	// (0: no cap): a storm is then served in turn rather than every login
	// advancing a little at a time.
	MaxInProgress int
}

// LoginGuard shapes new upstream logins per endpoint: a token bucket for
// the rate, and a cap on logins in progress, both waited for in arrival
// order. RDS throttles IAM logins near 200 a second per instance and then
// fails them ("too many competing requests"): a storm of clients is better
// served in turn, a little later, than refused by the server.
//
// The two waits are bounded differently. The rate's is known in advance,
// so a login whose token would come after MaxWait is refused at once,
// while the client can still do something useful with the answer. A
// login that may be served otherwise meanwhile (a Claim) waits in line
// instead (WaitInLine), and is not counted where a newcomer's due time
// is projected, as most such logins leave: so a login may still be
// refused when its limit comes, after those ahead of it stayed after all
// (or the limits changed, or a Count took a token). A
// place among the logins in progress frees when the server has answered
// one, which nobody can say in advance: a login waits in line for as long
// as its caller's context allows (the client's handshake timeout), as it
// would have waited for a slow server anyway; turning it away would shed
// no load from a server busy with the logins in progress. On a machine
// where a login takes seconds (a loaded one) a storm then still gets in,
// in turn, rather than being refused after MaxWait.
//
// Keys are strings (the host:port a token is signed for, a DSQL cluster,
// an Aurora instance) so that every engine and router can share one guard
// per process without importing one another's types; an endpoint served by
// several listeners then has one budget. Safe for concurrent use.
type LoginGuard struct {
	defaults LoginLimits
	maxWait  time.Duration

	mu   sync.Mutex
	keys map[string]*endpointGuard
}

// NewLoginGuard is a guard with limits for every key not set otherwise
// (see Limit), and maxWait the longest a login waits (0: it never waits;
// over the rate it is refused at once).
func NewLoginGuard(defaults LoginLimits, maxWait time.Duration) *LoginGuard {
	return &LoginGuard{defaults: defaults, maxWait: max(maxWait, 0), keys: map[string]*endpointGuard{}}
}

// MaxWait is the longest a login waits.
func (g *LoginGuard) MaxWait() time.Duration { return g.maxWait }

// Limit sets key's own limits (a DSQL cluster's 90/s), replacing the
// defaults for it; logins already waiting keep their place.
func (g *LoginGuard) Limit(key string, l LoginLimits) {
	g.mu.Lock()
	e, ok := g.keys[key]
	if !ok {
		// New: its bucket starts full at its own burst.
		e = &endpointGuard{key: key}
		e.setLimits(l)
		g.keys[key] = e
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setLimits(l)
}

// Limits are key's limits.
func (g *LoginGuard) Limits(key string) LoginLimits {
	e := g.endpoint(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limits
}

// endpoint is key's state, made on first use.
func (g *LoginGuard) endpoint(key string) *endpointGuard {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.keys[key]
	if !ok {
		e = &endpointGuard{key: key}
		e.setLimits(g.defaults)
		g.keys[key] = e
	}
	return e
}

// LoginRateError is a login the guard turned away: it would have waited
// longer than it may.
type LoginRateError struct {
	Key    string
	Limits LoginLimits
	// Wait is how long the login could wait; InProgress says it waited
	// for a place among the logins in progress (else for the rate).
	Wait       time.Duration
	InProgress bool
}

func (e *LoginRateError) Error() string {
	if e.InProgress {
		return fmt.Sprintf("login to %s: %d logins in progress and no place freed within %s", e.Key, e.Limits.MaxInProgress, e.Wait)
	}
	return fmt.Sprintf("login to %s: over %g logins/s (burst %d) for longer than %s", e.Key, e.Limits.Rate, e.Limits.Burst, e.Wait)
}

// Wait waits for key's turn to log in: a token of its rate, then a place
// among its logins in progress, in arrival order each. A token due after
// the guard's MaxWait or ctx's deadline is refused at once with a
// *LoginRateError, not waited for in vain; a place among the logins in
// progress is waited for until ctx's deadline (MaxWait without one), then
// refused the same way. On success release gives the place back (call it
// once the login has finished, logged in or not); waited is the time
// spent waiting.
func (g *LoginGuard) Wait(ctx context.Context, key string) (release func(), waited time.Duration, err error) {
	return g.wait(ctx, key, true)
}

// WaitInLine is Wait for a login that may be served otherwise while it
// waits (a Claim: a session another client leaves): a token due after
// MaxWait because of those ahead of it in line is not refused at once,
// as they may leave for the same reason; it waits in line and is refused
// when MaxWait (or ctx's deadline) comes first, or when its own token,
// reserved once it heads the line, would. Such logins are not counted
// where Wait projects a newcomer's due time (most of them leave), nor by
// Busy until they go.
func (g *LoginGuard) WaitInLine(ctx context.Context, key string) (release func(), waited time.Duration, err error) {
	return g.wait(ctx, key, false)
}

func (g *LoginGuard) wait(ctx context.Context, key string, early bool) (release func(), waited time.Duration, err error) {
	start := time.Now()
	e := g.endpoint(key)
	limit := start.Add(g.maxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(limit) {
		limit = d
	}
	if err := e.takeToken(ctx, start, limit, g.maxWait, early); err != nil {
		return nil, time.Since(start), err
	}
	line := start.Add(g.maxWait)
	if d, ok := ctx.Deadline(); ok {
		line = d
	}
	release, err = e.enter(ctx, line, line.Sub(start))
	return release, time.Since(start), err
}

// WaitRate waits for a token of key's rate only, no later than MaxWait
// or ctx's deadline (else a *LoginRateError at once): for a second login
// attempt (a retry with a fresh token) by a login that holds its place
// already, and for a login whose upstream connection is open already
// (MySQL), which the server counts as in progress anyway.
func (g *LoginGuard) WaitRate(ctx context.Context, key string) error {
	return g.waitRate(ctx, key, true)
}

// WaitRateInLine is WaitRate for a login a Claim may serve meanwhile (see
// WaitInLine).
func (g *LoginGuard) WaitRateInLine(ctx context.Context, key string) error {
	return g.waitRate(ctx, key, false)
}

func (g *LoginGuard) waitRate(ctx context.Context, key string, early bool) error {
	start := time.Now()
	limit := start.Add(g.maxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(limit) {
		limit = d
	}
	return g.endpoint(key).takeToken(ctx, start, limit, g.maxWait, early)
}

// Count counts a login the proxy makes for itself (the Aurora topology
// monitor's look at an instance) against key's rate without waiting. It
// takes the next token at once, so the clients' logins after it wait that
// much longer and the server's budget is kept; it takes no place in line,
// so a storm of clients never delays the monitor that routes them.
func (g *LoginGuard) Count(key string) {
	e := g.endpoint(key)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recent.add(now)
	if e.limiter != nil {
		e.limiter.ReserveN(now, 1)
	}
}

// Busy says whether key has had logins at more than half its rate over
// about the last second (with no rate set, half the default rate): a
// generic authentication failure then may well be the server's throttle,
// which RDS does not always name.
func (g *LoginGuard) Busy(key string) bool {
	e := g.endpoint(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.limits.Rate
	if r <= 0 {
		r = DefaultLoginRate
	}
	return e.recent.rate(time.Now()) > r/2
}

// endpointGuard is one key's limiter, its logins in progress and the
// queue waiting for a place among them.
type endpointGuard struct {
	key string

	mu         sync.Mutex
	limits     LoginLimits
	limiter    *rate.Limiter // nil: no rate limit
	inProgress int
	queue      []*loginWaiter // FIFO
	line       []*rateWaiter  // for a token of the rate, FIFO: the head holds its reservation
	recent     window
}

// loginWaiter is a login waiting for a place; granted is closed when a
// leaving login hands it its place.
type loginWaiter struct {
	granted chan struct{}
	done    bool // granted (under the guard's lock)
}

func (e *endpointGuard) setLimits(l LoginLimits) {
	if l.Rate > 0 && l.Burst < 1 {
		l.Burst = 1
	}
	e.limits = l
	switch {
	case l.Rate <= 0:
		e.limiter = nil
		// The line goes at once (its head when its token is due).
		if len(e.line) > 1 {
			for _, w := range e.line[1:] {
				w.due = time.Now()
				close(w.turn)
			}
			e.line = e.line[:1]
		}
	case e.limiter == nil:
		e.limiter = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
	default:
		e.limiter.SetLimit(rate.Limit(l.Rate))
		e.limiter.SetBurst(l.Burst)
	}
	// A raised cap lets waiters in now.
	e.grantLocked()
}

// takeToken waits for the next token of the rate, first come, first
// served, refusing when it would come after limit: at once when early,
// else when limit comes. The logins waiting for a token stand in a line
// (e.line) and only its head holds a reservation of the limiter: a login
// that leaves the line (its client gone, or given a session left by
// another client: a Claim) lets those behind it move up at once.
// Reservations made at arrival, one per login, would have kept every
// later login at its first due time, each leaver's token lost to all.
func (e *endpointGuard) takeToken(ctx context.Context, now, limit time.Time, maxWait time.Duration, early bool) error {
	e.mu.Lock()
	lim, limits := e.limiter, e.limits
	if early || lim == nil {
		e.recent.add(now) // a claim's login counts once it goes (waitDue)
	}
	if lim == nil {
		e.mu.Unlock()
		return nil
	}
	refusal := &LoginRateError{Key: e.key, Limits: limits, Wait: limit.Sub(now)}
	if len(e.line) == 0 {
		r := lim.ReserveN(now, 1)
		if !r.OK() {
			e.mu.Unlock()
			return &LoginRateError{Key: e.key, Limits: limits, Wait: maxWait}
		}
		d := r.DelayFrom(now)
		if d == 0 {
			if !early {
				e.recent.add(now)
			}
			e.mu.Unlock()
			return nil
		}
		if now.Add(d).After(limit) {
			r.CancelAt(now) // the token goes back to those who can wait
			e.mu.Unlock()
			return refusal
		}
		w := &rateWaiter{turn: make(chan struct{}), r: r, due: now.Add(d), mayLeave: !early}
		close(w.turn)
		e.line = append(e.line, w)
		e.mu.Unlock()
		return e.waitDue(ctx, w)
	}
	// Behind the head: each in line takes the next token, one per 1/rate
	// (none is left over while any waits); those that may leave (claims)
	// are not counted.
	if early {
		ahead := 0
		for _, q := range e.line[1:] {
			if !q.mayLeave {
				ahead++
			}
		}
		if due := e.line[0].due.Add(time.Duration(float64(ahead+1) * float64(time.Second) / float64(lim.Limit()))); due.After(limit) {
			e.mu.Unlock()
			return refusal
		}
	}
	w := &rateWaiter{turn: make(chan struct{}), mayLeave: !early}
	e.line = append(e.line, w)
	e.mu.Unlock()
	t := time.NewTimer(limit.Sub(now))
	defer t.Stop()
	var err error
	select {
	case <-w.turn:
		if !w.due.After(limit) {
			return e.waitDue(ctx, w)
		}
		err = refusal // its token comes too late
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = refusal
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-w.turn: // the head (or let go) as it leaves: the turn is passed on
		if w.r != nil {
			w.r.Cancel()
		}
		e.advanceLocked(w)
	default:
		for i, q := range e.line {
			if q == w {
				e.line = append(e.line[:i], e.line[i+1:]...)
				break
			}
		}
	}
	return err
}

// rateWaiter is a login in line for a token of the rate; turn is closed
// when it heads the line, with its reservation r (nil: the rate was
// lifted) due at due.
type rateWaiter struct {
	turn     chan struct{}
	r        *rate.Reservation
	due      time.Time
	mayLeave bool // WaitInLine's: counted neither ahead of others nor by Busy until it goes
}

// waitDue waits, at the head of the line, until w's token is due, then
// hands the head to the next in line.
func (e *endpointGuard) waitDue(ctx context.Context, w *rateWaiter) error {
	var err error
	if d := time.Until(w.due); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil && w.r != nil {
		w.r.Cancel() // the only reservation out (but a Count's since): its token goes back
	}
	if err == nil && w.mayLeave {
		e.recent.add(time.Now())
	}
	e.advanceLocked(w)
	return err
}

// advanceLocked removes w, the head of the line, and makes the next one
// head, with a reservation of its own (with the rate lifted meanwhile,
// every one in line goes at once, and is no longer in it). e.mu is held.
func (e *endpointGuard) advanceLocked(w *rateWaiter) {
	if len(e.line) == 0 || e.line[0] != w {
		return // let go with the whole line when the rate was lifted
	}
	e.line = e.line[1:]
	if len(e.line) == 0 {
		e.line = nil
		return
	}
	if e.limiter == nil {
		now := time.Now()
		for _, w := range e.line {
			w.due = now
			close(w.turn)
		}
		e.line = nil
		return
	}
	now := time.Now()
	next := e.line[0]
	next.r = e.limiter.ReserveN(now, 1)
	next.due = now.Add(next.r.DelayFrom(now))
	close(next.turn)
}

// placeFreeLocked says a login may take a place among the logins in
// progress now: no cap, or one free and nobody in line for one before
// it. e.mu is held.
func (e *endpointGuard) placeFreeLocked() bool {
	return e.limits.MaxInProgress <= 0 || (e.inProgress < e.limits.MaxInProgress && len(e.queue) == 0)
}

// enter takes a place among the logins in progress, waiting in line
// until limit at the latest (wait long from the start of the login).
func (e *endpointGuard) enter(ctx context.Context, limit time.Time, wait time.Duration) (func(), error) {
	e.mu.Lock()
	if e.placeFreeLocked() {
		e.inProgress++
		e.mu.Unlock()
		return e.leaveOnce(), nil
	}
	limits := e.limits
	w := &loginWaiter{granted: make(chan struct{})}
	e.queue = append(e.queue, w)
	e.mu.Unlock()

	t := time.NewTimer(time.Until(limit))
	defer t.Stop()
	var err error
	select {
	case <-w.granted:
		return e.leaveOnce(), nil
	case <-t.C:
		err = &LoginRateError{Key: e.key, Limits: limits, Wait: wait, InProgress: true}
	case <-ctx.Done():
		err = ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if w.done {
		// Granted as the wait ended: the place is passed on.
		e.inProgress--
		e.grantLocked()
		return nil, err
	}
	for i, q := range e.queue {
		if q == w {
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			break
		}
	}
	return nil, err
}

// TryWait takes key's turn at once when nobody waits and a token (and,
// unless rateOnly, a place among the logins in progress) is free; ok
// false: nothing was taken, wait with Wait (or WaitRate). It lets a login
// that would not wait skip what a wait costs (a Claim beside it).
func (g *LoginGuard) TryWait(key string, rateOnly bool) (release func(), ok bool) {
	e := g.endpoint(key)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.line) > 0 || (!rateOnly && !e.placeFreeLocked()) {
		return nil, false
	}
	if e.limiter != nil && !e.limiter.AllowN(now, 1) {
		return nil, false
	}
	e.recent.add(now)
	if rateOnly {
		return func() {}, true
	}
	e.inProgress++
	return e.leaveOnce(), true
}

// leaveOnce gives a place back, once however often it is called.
func (e *endpointGuard) leaveOnce() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.inProgress--
			e.grantLocked()
		})
	}
}

// grantLocked hands free places to the first in line.
func (e *endpointGuard) grantLocked() {
	for len(e.queue) > 0 && (e.limits.MaxInProgress <= 0 || e.inProgress < e.limits.MaxInProgress) {
		w := e.queue[0]
		e.queue = e.queue[1:]
		w.done = true
		e.inProgress++
		close(w.granted)
	}
}

// InProgress is the number of key's logins in progress and waiting for a
// place, for metrics and tests.
func (g *LoginGuard) InProgress(key string) (inProgress, waiting int) {
	e := g.endpoint(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inProgress, len(e.queue)
}

// window counts events over about the last second: this second's count
// and the last one's, weighted by how much of it is still in the window.
type window struct {
	start     time.Time
	cur, prev float64
}

func (w *window) roll(now time.Time) {
	switch el := now.Sub(w.start); {
	case el < time.Second:
	case el < 2*time.Second:
		w.start, w.prev, w.cur = w.start.Add(time.Second), w.cur, 0
	default:
		w.start, w.prev, w.cur = now, 0, 0
	}
}

func (w *window) add(now time.Time) {
	w.roll(now)
	w.cur++
}

func (w *window) rate(now time.Time) float64 {
	w.roll(now)
	frac := float64(now.Sub(w.start)) / float64(time.Second)
	return w.prev*(1-frac) + w.cur
}
