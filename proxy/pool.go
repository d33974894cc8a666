package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Pooled is an upstream session that can wait in a Pool between clients.
type Pooled interface {
	// Reset makes the session fit for another client (Postgres: DISCARD
	// ALL); an error closes it. It runs on the pool's goroutine, under a
	// deadline.
	Reset(ctx context.Context) error
	// Discard closes the session for good.
	Discard()
	// Born is when the session logged in, for the pool's lifetime.
	Born() time.Time
	// Hosts are the host:port names the session answers to (the endpoint
	// signed for, the address connected to), for DropHost.
	Hosts() []string
}

// PoolOptions are a Pool's limits; zero values take the defaults.
type PoolOptions struct {
	// IdleTimeout closes a session parked this long. Default 5m.
	IdleTimeout time.Duration
	// MaxLifetime closes a session this long after its login, at its
	// next park or by the reaper. Default 1h.
	MaxLifetime time.Duration
	// MaxIdlePerKey caps the sessions parked for one key. Default 16.
	MaxIdlePerKey int
	// MaxIdle caps the sessions parked (and being reset) in all; a new
	// one takes the place of the longest parked. Default 128.
	MaxIdle int
	// ResetTimeout bounds a session's reset. Default 5s.
	ResetTimeout time.Duration
	// MinIdlePerKey is how many sessions the pool keeps parked for each
	// key a Fill is kept for (see Keep), logging in new ones in the
	// background; at most MaxIdlePerKey. 0: none are logged in ahead.
	MinIdlePerKey int
	Logger        *slog.Logger
}

// Pool holds upstream sessions their clients left cleanly, reset, for the
// next client with the same key (see Settings.Serve): the key names
// everything a session was logged in with that a reset cannot change
// (host:port, user, database, startup parameters), so a session only ever
// goes to a client that could have logged in to it itself. A session is
// reset on a goroutine of its own before it is parked; a client that
// finds none parked but one being reset for its key waits for that one
// rather than logging in anew.
type Pool struct {
	o      PoolOptions
	mu     sync.Mutex
	keys   map[string]*poolKey
	idle   int // parked, all keys
	reset  int // being reset, all keys
	closed bool
	stop   chan struct{}
	done   chan struct{}
	// filling: logins for the minimum in progress, all keys; fills are
	// cut by fillCtx's end at Close, which waits for them.
	filling int
	fillCtx context.Context
	endFill context.CancelFunc
	fills   sync.WaitGroup
	// dropped is when DropHost last ran for each host:port: a session
	// being reset or logged in ahead when it ran is not parked after it
	// (droppedSince).
	dropped map[string]time.Time
}

type poolKey struct {
	parked    []parked // oldest first
	resetting int
	waiters   int
	ready     chan struct{} // closed and replaced when a reset (or a fill) ends
	// fill logs in a session for the key, to keep MinIdlePerKey parked
	// (nil: none is kept); see Keep.
	fill      Fill
	fillGen   int // counts Keep's fills: a failed one clears only its own
	filling   int
	used      time.Time // when a client last left or took a session of the key
	fillAfter time.Time // after a failed fill, when to try again
	fillPause time.Duration
	// claims wait in the login-rate guard for the key's next session,
	// oldest first (poolclaim.go): a session readied while any wait goes
	// to them, not to the parked ones.
	claims []*Claim
}

// Fill logs in one session for a key, for the pool's minimum: under the
// login-rate guard, with a fresh token, within ctx.
type Fill func(ctx context.Context) (Pooled, error)

type parked struct {
	s     Pooled
	since time.Time
}

// NewPool starts a pool and its reaper; Close stops them.
func NewPool(o PoolOptions) *Pool {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = time.Hour
	}
	if o.MaxIdlePerKey <= 0 {
		o.MaxIdlePerKey = 16
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 128
	}
	if o.ResetTimeout <= 0 {
		o.ResetTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.MinIdlePerKey = max(0, min(o.MinIdlePerKey, o.MaxIdlePerKey))
	p := &Pool{o: o, keys: map[string]*poolKey{}, stop: make(chan struct{}), done: make(chan struct{})}
	p.fillCtx, p.endFill = context.WithCancel(context.Background())
	go p.reaper()
	return p
}

// Get takes a session parked for key, waiting up to wait for one being
// reset for it when none is parked and the resets under way are more than
// those waited for already (by Gets, and by claims: see Claim); nil:
// none, log in.
func (p *Pool) Get(ctx context.Context, key string, wait time.Duration) Pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(wait)
	for !p.closed {
		k := p.keys[key]
		if k == nil {
			return nil
		}
		if n := len(k.parked); n > 0 {
			s := k.parked[n-1] // the most recently parked: the others may age out
			k.parked = k.parked[:n-1]
			p.idle--
			k.used = time.Now()
			p.topUpLocked(key, k)
			p.gcKey(key, k)
			if p.expired(s.s) {
				go s.s.Discard()
				continue
			}
			return s.s
		}
		// Each reset in progress can serve one waiter; the others log in.
		// The claims waiting in the guard came first: theirs are the
		// next sessions.
		if k.resetting <= k.waiters+len(k.claims) || time.Now().After(deadline) {
			return nil
		}
		k.waiters++
		ready := k.ready
		p.mu.Unlock()
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ready:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		p.mu.Lock()
		k.waiters--
		if ctx.Err() != nil {
			// Gone: one kept back for this wait goes to a claim.
			p.handOutLocked(key, k)
			p.gcKey(key, k)
			return nil
		}
		p.gcKey(key, k)
	}
	return nil
}

// Put resets s on a goroutine of its own and parks it for key, or
// discards it when the reset fails or the limits have no room.
func (p *Pool) Put(key string, s Pooled) {
	p.mu.Lock()
	k := p.keys[key]
	if k == nil {
		k = &poolKey{ready: make(chan struct{})}
		p.keys[key] = k
	}
	// A claim that no reset or fill under way will serve is waiting for
	// this very session: the limits on parked sessions do not apply to it
	// (unless the claim has gone by the time it is ready: parkLocked).
	claimed := len(k.claims)+k.waiters > k.resetting+k.filling
	full := p.closed || p.expired(s) || (!claimed && len(k.parked)+k.resetting >= p.o.MaxIdlePerKey)
	if !full && !claimed && p.idle+p.reset >= p.o.MaxIdle {
		full = !p.evictOldestLocked()
	}
	if full {
		p.gcKey(key, k)
		p.mu.Unlock()
		s.Discard()
		return
	}
	k.resetting++
	p.reset++
	p.mu.Unlock()
	go p.resetAndPark(key, s, time.Now())
}

// resetAndPark resets s and parks it for key, unless DropHost closed its
// instance's sessions since start (when Put took it: before the reset
// began, as the goroutine may start late).
func (p *Pool) resetAndPark(key string, s Pooled, start time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.ResetTimeout)
	err := s.Reset(ctx)
	cancel()
	p.mu.Lock()
	k := p.keys[key]
	k.resetting--
	p.reset--
	ok := err == nil && !p.closed && !p.droppedSince(s, start) && p.parkLocked(key, k, s, true)
	close(k.ready)
	k.ready = make(chan struct{})
	if !ok {
		p.topUpLocked(key, k)
	}
	p.gcKey(key, k)
	p.mu.Unlock()
	if !ok {
		if err != nil {
			p.o.Logger.Info("session not reused: its reset failed", "err", err)
		}
		s.Discard()
	}
}

// parkLocked parks s for key, or hands it to the key's oldest claim
// (poolclaim.go); false when it would stay parked and the limits leave no
// room (a session readied for a claim that has gone since: Put let it
// past them), for the caller to discard. evict: the longest parked
// session of any key may make room (not for a fill, which is never worth
// a session a client left). p.mu is held.
func (p *Pool) parkLocked(key string, k *poolKey, s Pooled, evict bool) bool {
	// handOutLocked keeps one parked session back per Get waiting.
	if handed := len(k.claims) > 0 && len(k.parked) >= k.waiters; !handed {
		if len(k.parked)+k.resetting >= p.o.MaxIdlePerKey {
			return false
		}
		if p.idle+p.reset >= p.o.MaxIdle && (!evict || !p.evictOldestLocked()) {
			return false
		}
	}
	k.parked = append(k.parked, parked{s: s, since: time.Now()})
	p.idle++
	p.handOutLocked(key, k)
	return true
}

// expired says whether s is past the pool's lifetime.
func (p *Pool) expired(s Pooled) bool { return time.Since(s.Born()) >= p.o.MaxLifetime }

// evictOldestLocked discards the session parked longest, over all keys,
// to make room; false when none is parked.
func (p *Pool) evictOldestLocked() bool {
	var oldest *poolKey
	var oldKey string
	for key, k := range p.keys {
		if len(k.parked) > 0 && (oldest == nil || k.parked[0].since.Before(oldest.parked[0].since)) {
			oldest, oldKey = k, key
		}
	}
	if oldest == nil {
		return false
	}
	s := oldest.parked[0].s
	oldest.parked = oldest.parked[1:]
	p.idle--
	p.gcKey(oldKey, oldest)
	go s.Discard()
	return true
}

// gcKey forgets a key with nothing parked, being reset, filled, waited
// for or claimed, and no minimum kept.
func (p *Pool) gcKey(key string, k *poolKey) {
	if len(k.parked) == 0 && k.resetting == 0 && k.waiters == 0 && len(k.claims) == 0 && k.fill == nil && k.filling == 0 && p.keys[key] == k {
		delete(p.keys, key)
	}
}

// DropHost discards every session parked for hostport (the endpoint a
// session was signed for, or the address it is connected to): after a
// failover the old writer's sessions must not go to new clients.
// Sessions being reset for it are discarded when their reset ends only if
// they are dropped again then; callers drop on each topology change.
func (p *Pool) DropHost(hostport string) int {
	var drop []Pooled
	p.mu.Lock()
	if p.dropped == nil {
		p.dropped = map[string]time.Time{}
	}
	p.dropped[hostport] = time.Now()
	for key, k := range p.keys {
		kept := k.parked[:0]
		for _, s := range k.parked {
			if hasHost(s.s, hostport) {
				drop = append(drop, s.s)
				continue
			}
			kept = append(kept, s)
		}
		p.idle -= len(k.parked) - len(kept)
		k.parked = kept
		p.gcKey(key, k)
	}
	p.mu.Unlock()
	for _, s := range drop {
		s.Discard()
	}
	return len(drop)
}

// droppedSince reports whether DropHost ran for one of s's hosts at or
// after start (a reset or a fill of s under way then). p.mu is held.
func (p *Pool) droppedSince(s Pooled, start time.Time) bool {
	if len(p.dropped) == 0 {
		return false
	}
	for _, h := range s.Hosts() {
		if at, ok := p.dropped[h]; ok && !at.Before(start) {
			return true
		}
	}
	return false
}

func hasHost(s Pooled, hostport string) bool {
	for _, h := range s.Hosts() {
		if h == hostport {
			return true
		}
	}
	return false
}

// Idle is how many sessions are parked.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// Close discards every parked session and stops the reaper; sessions
// being reset are discarded when their reset ends, and later Puts discard
// theirs. It is safe to call more than once, and on a nil Pool.
func (p *Pool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var drop []Pooled
	for _, k := range p.keys {
		for _, s := range k.parked {
			drop = append(drop, s.s)
		}
		k.parked = nil
		close(k.ready) // waiters give up
		k.ready = make(chan struct{})
	}
	p.idle = 0
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.endFill()
	p.fills.Wait() // each discards what it logged in
	for _, s := range drop {
		s.Discard()
	}
}

// reaper discards sessions parked longer than the idle timeout or past
// their lifetime, checking a tenth as often as the shorter of the two
// (at least every second, at most every minute).
func (p *Pool) reaper() {
	defer close(p.done)
	every := min(p.o.IdleTimeout, p.o.MaxLifetime) / 10
	every = max(time.Second, min(every, time.Minute))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.reap(now)
		}
	}
}

func (p *Pool) reap(now time.Time) {
	var drop []Pooled
	p.mu.Lock()
	for key, k := range p.keys {
		kept := k.parked[:0]
		// The minimum of a key in use is spared the idle timeout (not
		// its lifetime): it would only be logged in again.
		spare := 0
		if k.fill != nil && now.Sub(k.used) < p.o.IdleTimeout {
			spare = p.o.MinIdlePerKey
		}
		for i, s := range k.parked {
			old := now.Sub(s.s.Born()) >= p.o.MaxLifetime
			idle := now.Sub(s.since) >= p.o.IdleTimeout && len(k.parked)-i > spare
			if old || idle {
				drop = append(drop, s.s)
				continue
			}
			kept = append(kept, s)
		}
		p.idle -= len(k.parked) - len(kept)
		k.parked = kept
		if k.fill != nil && now.Sub(k.used) >= p.o.IdleTimeout {
			k.fill = nil // no client for the idle timeout: keep none ahead
		}
		p.topUpLocked(key, k)
		p.gcKey(key, k)
	}
	p.mu.Unlock()
	for _, s := range drop {
		s.Discard()
	}
}
