package proxy

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEvictGrace is how long a connection may stay silent in a full
// gate before a newcomer may take its place. A real client sends its first
// packet within milliseconds of connecting; two seconds leaves room for a
// loaded machine while keeping a flood of silent connections from holding
// every place. (MySQL's gate for unanswered greetings waits longer: see
// mysql.GreetingGrace.)
const DefaultEvictGrace = 2 * time.Second

// Gate caps how many connections are in one step of their login at once.
// A full gate makes room by evicting the oldest holder that has been
// evictable (silent) for the grace period: slow or idle clients cannot
// lock real ones out, and a real client, which speaks at once, is never
// the one evicted.
//
// It is used two ways, never both on one gate:
//
//   - TryEnter, by the accept loop (connections logging in): it never
//     waits. An evicted holder's place goes to the newcomer at once; with
//     nobody to evict the newcomer is refused.
//   - Enter, by MySQL's login (upstream connections held for clients that
//     have not answered the greeting): it waits, newest first, and an
//     evicted holder keeps its place until it has left, so the number of
//     upstream connections never exceeds the cap.
//
// A nil *Gate admits everyone and its passes do nothing.
type Gate struct {
	max   int
	grace time.Duration

	mu       sync.Mutex
	holders  list.List // of *Pass, oldest first
	waiters  []chan *Pass
	evicting int // evicted passes still held (Enter's gates)
	timer    *time.Timer

	evicted, refused atomic.Int64
}

// NewGate returns a gate of max places, or nil (no cap) for max <= 0. A
// grace of 0 means DefaultEvictGrace.
func NewGate(max int, grace time.Duration) *Gate {
	if max <= 0 {
		return nil
	}
	if grace <= 0 {
		grace = DefaultEvictGrace
	}
	return &Gate{max: max, grace: grace}
}

// Max is the number of places (0: no cap).
func (g *Gate) Max() int {
	if g == nil {
		return 0
	}
	return g.max
}

// Held is how many places are taken.
func (g *Gate) Held() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holders.Len()
}

// Counts are the gate's evictions and refusals so far, for logs.
func (g *Gate) Counts() (evicted, refused int64) {
	if g == nil {
		return 0, 0
	}
	return g.evicted.Load(), g.refused.Load()
}

// Exposed is how many holders are waiting on their client (exposed, not
// evicted): with none, every place is held by a login still waiting on
// something else (MySQL: the upstream's greeting).
func (g *Gate) Exposed() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for e := g.holders.Front(); e != nil; e = e.Next() {
		if p := e.Value.(*Pass); !p.since.IsZero() && !p.evicted {
			n++
		}
	}
	return n
}

// Pass is one holder's place in a gate.
type Pass struct {
	g    *Gate
	elem *list.Element // nil once it has left or was evicted by TryEnter
	// since is when the holder became evictable (it may be evicted once
	// grace has passed since); zero: not evictable.
	since   time.Time
	evicted bool
	cut     func()
	left    bool
}

func (g *Gate) addLocked(since time.Time) *Pass {
	p := &Pass{g: g, since: since}
	p.elem = g.holders.PushBack(p)
	return p
}

// TryEnter takes a place without waiting, evictable from now on (until
// Shield). When the gate is full it evicts the oldest holder silent for
// the grace period and takes its place; ok is false when there is none.
func (g *Gate) TryEnter() (p *Pass, ok bool) {
	if g == nil {
		return nil, true
	}
	now := time.Now()
	g.mu.Lock()
	if g.holders.Len() < g.max {
		p = g.addLocked(now)
		g.mu.Unlock()
		return p, true
	}
	victim, _ := g.oldestEvictable(now)
	if victim == nil {
		g.mu.Unlock()
		g.refused.Add(1)
		return nil, false
	}
	victim.evicted = true
	g.holders.Remove(victim.elem)
	victim.elem = nil
	cut := victim.cut
	p = g.addLocked(now)
	g.mu.Unlock()
	g.evicted.Add(1)
	if cut != nil {
		cut()
	}
	return p, true
}

// Enter takes a place, waiting while the gate is full until a holder
// leaves or ctx is done. The newest waiter is served first: under a flood
// of clients that never answer, the one that just arrived is the likeliest
// to be real. The pass is not evictable until Expose.
func (g *Gate) Enter(ctx context.Context) (*Pass, error) {
	if g == nil {
		return nil, nil
	}
	g.mu.Lock()
	if g.holders.Len() < g.max && len(g.waiters) == 0 {
		p := g.addLocked(time.Time{})
		g.mu.Unlock()
		return p, nil
	}
	ch := make(chan *Pass, 1)
	g.waiters = append(g.waiters, ch)
	cuts := g.evictLocked(time.Now())
	g.mu.Unlock()
	runAll(cuts)
	select {
	case p := <-ch:
		return p, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, w := range g.waiters {
		if w == ch {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			g.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	g.mu.Unlock()
	// Handed a place just as ctx ended: give it on.
	(<-ch).Leave()
	return nil, ctx.Err()
}

// evictLocked evicts, for Enter's waiters, the oldest holders that are
// evictable, one per waiter not already covered by an eviction in flight,
// and arms the timer for the next holder to become evictable. It returns
// the cuts to run once the lock is released.
func (g *Gate) evictLocked(now time.Time) (cuts []func()) {
	for len(g.waiters) > g.evicting {
		victim, next := g.oldestEvictable(now)
		if victim == nil {
			if !next.IsZero() {
				g.armLocked(next.Sub(now))
			}
			return cuts
		}
		victim.evicted = true
		g.evicting++
		g.evicted.Add(1)
		if victim.cut != nil {
			cuts = append(cuts, victim.cut)
		}
	}
	return cuts
}

// oldestEvictable finds the oldest holder that may be evicted now, or
// else when the next one may be (zero: none is evictable at all).
func (g *Gate) oldestEvictable(now time.Time) (victim *Pass, next time.Time) {
	for e := g.holders.Front(); e != nil; e = e.Next() {
		p := e.Value.(*Pass)
		if p.since.IsZero() || p.evicted {
			continue
		}
		at := p.since.Add(g.grace)
		if !at.After(now) {
			return p, time.Time{}
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return nil, next
}

func (g *Gate) armLocked(d time.Duration) {
	if g.timer == nil {
		g.timer = time.AfterFunc(d, g.tick)
		return
	}
	g.timer.Reset(d)
}

func (g *Gate) tick() {
	g.mu.Lock()
	cuts := g.evictLocked(time.Now())
	g.mu.Unlock()
	runAll(cuts)
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// OnEvict sets how to cut this holder short when it is evicted; when it
// already was, cut runs now. cut must be quick (set a deadline, cancel a
// context) and safe to run from another goroutine.
func (p *Pass) OnEvict(cut func()) {
	if p == nil {
		return
	}
	p.g.mu.Lock()
	p.cut = cut
	evicted := p.evicted
	p.g.mu.Unlock()
	if evicted {
		cut()
	}
}

// Evicted reports whether the holder was evicted.
func (p *Pass) Evicted() bool {
	if p == nil {
		return false
	}
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	return p.evicted
}

// Expose makes the holder evictable from now on: it is waiting on its
// client (a greeting was sent).
func (p *Pass) Expose() {
	if p == nil {
		return
	}
	g := p.g
	g.mu.Lock()
	p.since = time.Now()
	var cuts []func()
	if len(g.waiters) > g.evicting {
		cuts = g.evictLocked(p.since)
	}
	g.mu.Unlock()
	runAll(cuts)
}

// Shield makes the holder no longer evictable: its client has spoken.
func (p *Pass) Shield() {
	if p == nil {
		return
	}
	p.g.mu.Lock()
	p.since = time.Time{}
	p.g.mu.Unlock()
}

// Leave gives the place up (to the newest waiter, if any). Safe to call
// more than once.
func (p *Pass) Leave() {
	if p == nil {
		return
	}
	g := p.g
	g.mu.Lock()
	if p.left {
		g.mu.Unlock()
		return
	}
	p.left = true
	if p.elem != nil {
		g.holders.Remove(p.elem)
		p.elem = nil
		if p.evicted {
			g.evicting--
		}
	}
	for len(g.waiters) > 0 && g.holders.Len() < g.max {
		ch := g.waiters[len(g.waiters)-1]
		g.waiters = g.waiters[:len(g.waiters)-1]
		ch <- g.addLocked(time.Time{})
	}
	cuts := g.evictLocked(time.Now())
	g.mu.Unlock()
	runAll(cuts)
}

// busyLogEvery spaces the warnings about a full handshake cap: a flood
// evicts or refuses thousands of connections, and one line per connection
// would bury everything else in the log (each is still logged at debug
// level and counted in the metrics).
const busyLogEvery = 10 * time.Second

// busyLog warns at most once per busyLogEvery that the handshake cap is
// full, with the evictions and refusals since the last warning.
type busyLog struct {
	mu               sync.Mutex
	last             time.Time
	evicted, refused int64 // totals at the last warning
}

func (b *busyLog) note(log interface {
	Warn(msg string, args ...any)
}, g *Gate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.last.IsZero() && now.Sub(b.last) < busyLogEvery {
		return
	}
	evicted, refused := g.Counts()
	log.Warn("too many connections logging in at once: evicting the ones silent longest, refusing newcomers when none is",
		"max_handshakes", g.Max(), "evicted", evicted-b.evicted, "refused", refused-b.refused,
		"since", sinceText(b.last, now),
		"fix", "if these are real clients, raise --max-handshakes; else find what connects and sends nothing (the clients' addresses are in the debug log)")
	b.last, b.evicted, b.refused = now, evicted, refused
}

func sinceText(last, now time.Time) string {
	if last.IsZero() {
		return "start"
	}
	return now.Sub(last).Round(time.Second).String() + " ago"
}
