package proxy

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Claims are served oldest first, each by one session, and a session
// readied while claims wait goes to them (past the per-key cap), not to
// the parked ones or to a later Get.
func TestPoolClaimsServedInOrder(t *testing.T) {
	p := NewPool(PoolOptions{MaxIdlePerKey: 1, MaxIdle: 1})
	defer p.Close()
	c1, c2, c3 := p.Claim("k"), p.Claim("k"), p.Claim("k")
	other := p.Claim("k2")
	a, b := newFake("a"), newFake("b")
	a.resetTook = 20 * time.Millisecond
	p.Put("k", a)
	p.Put("k", b) // over the key's cap of 1, but a claim waits for it
	got := map[Pooled]int{}
	for i, c := range []*Claim{c1, c2} {
		select {
		case s := <-c.Got():
			got[s] = i + 1
		case <-time.After(5 * time.Second):
			t.Fatalf("claim %d got nothing", i+1)
		}
	}
	if got[a] == 0 || got[b] == 0 || a.discarded.Load() || b.discarded.Load() {
		t.Fatalf("the two sessions went %v (a discarded %v, b %v), want one to each of the first two claims", got, a.discarded.Load(), b.discarded.Load())
	}
	if g := p.Get(context.Background(), "k", 0); g != nil {
		t.Fatalf("a Get took %v while a claim waited", g)
	}
	c := newFake("c")
	p.Put("k", c)
	select {
	case s := <-c3.Got():
		if s != c {
			t.Fatalf("claim 3 got %v, want c", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("claim 3 got nothing")
	}
	if p.Idle() != 0 {
		t.Fatalf("%d parked, want 0: every session went to a claim", p.Idle())
	}
	if s := other.Withdraw(); s != nil {
		t.Fatalf("a claim for k2 got %v, left for k", s)
	}
	// No claim left: a session is parked again, and a new claim takes it
	// at once.
	d := newFake("d")
	parkAll(t, p, "k", d)
	c4 := p.Claim("k")
	select {
	case s := <-c4.Got():
		if s != d {
			t.Fatalf("claim 4 got %v, want d", s)
		}
	default:
		t.Fatal("a claim made while a session was parked did not get it at once")
	}
}

// A withdrawn claim gets nothing more; one handed a session as it
// withdraws returns it, so that it is neither lost nor handed twice.
func TestPoolClaimWithdraw(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.Close()
	c1 := p.Claim("k")
	if s := c1.Withdraw(); s != nil {
		t.Fatalf("withdraw of an unserved claim returned %v", s)
	}
	a := newFake("a")
	parkAll(t, p, "k", a)
	if g := p.Get(context.Background(), "k", 0); g != a {
		t.Fatalf("Get took %v, want a: a withdrawn claim took it", g)
	}
	c2 := p.Claim("k")
	b := newFake("b")
	p.Put("k", b)
	deadline := time.Now().Add(5 * time.Second)
	for len(c2.got) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := c2.Withdraw(); s != b {
		t.Fatalf("withdraw after the hand-over returned %v, want b", s)
	}
	if p.Idle() != 0 {
		t.Fatalf("%d parked after the hand-over", p.Idle())
	}
}

// Many clients claiming and withdrawing while sessions come and go: every
// session ends with exactly one owner (a claim, or parked), none twice.
func TestPoolClaimsConcurrent(t *testing.T) {
	p := NewPool(PoolOptions{MaxIdlePerKey: 4, MaxIdle: 8})
	defer p.Close()
	const sessions, claimers = 200, 50
	var mu sync.Mutex
	owned := map[Pooled]int{}
	var wg sync.WaitGroup
	for range claimers {
		wg.Go(func() {
			for i := range 20 {
				c := p.Claim("k")
				var s Pooled
				select {
				case s = <-c.Got():
				case <-time.After(time.Duration(1+i%3) * time.Millisecond):
				}
				if q := c.Withdraw(); q != nil {
					if s != nil {
						t.Errorf("a claim got two sessions: %v and %v", s, q)
					}
					s = q
				}
				if s != nil {
					mu.Lock()
					owned[s]++
					mu.Unlock()
				}
			}
		})
	}
	all := make([]*fakeSession, sessions)
	for i := range all {
		all[i] = newFake("s")
		p.Put("k", all[i])
		time.Sleep(50 * time.Microsecond)
	}
	wg.Wait()
	waitResets(t, p)
	drained := map[Pooled]bool{}
	for s := p.Get(context.Background(), "k", 0); s != nil; s = p.Get(context.Background(), "k", 0) {
		drained[s] = true
	}
	mu.Lock()
	defer mu.Unlock()
	// A reset that ends in a discard calls Discard just after it stops
	// counting as a reset: such a session may be discarded a moment late.
	settled := func() bool {
		for _, s := range all {
			if owned[s] == 0 && !s.discarded.Load() && !drained[s] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	claimed := 0
	for _, s := range all {
		n := owned[s]
		if n > 1 {
			t.Fatalf("a session was handed to %d claims", n)
		}
		if n == 1 && (s.discarded.Load() || drained[s]) {
			t.Fatal("a session handed to a claim was also discarded or left parked")
		}
		if n == 0 && !s.discarded.Load() && !drained[s] {
			t.Fatal("a session was lost: neither claimed, parked nor discarded")
		}
		claimed += n
	}
	if claimed == 0 {
		t.Fatal("no claim got a session")
	}
	t.Logf("%d of %d sessions went to claims", claimed, sessions)
}

// A session readied past the limits for a claim that has gone by then is
// discarded, not parked over them.
func TestPoolClaimGoneKeepsLimits(t *testing.T) {
	p := NewPool(PoolOptions{MaxIdlePerKey: 1, MaxIdle: 1})
	defer p.Close()
	claims := []*Claim{p.Claim("k"), p.Claim("k"), p.Claim("k")}
	ss := []*fakeSession{newFake("a"), newFake("b"), newFake("c")}
	hold := make(chan struct{})
	for _, s := range ss {
		s.hold = hold
		p.Put("k", s)
	}
	for _, c := range claims {
		if s := c.Withdraw(); s != nil {
			t.Fatalf("a claim got %v before any reset ended", s)
		}
	}
	close(hold) // the resets end once every claim has gone
	waitResets(t, p)
	// A discard may come a moment after its reset stopped counting.
	discarded := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		discarded = 0
		for _, s := range ss {
			if s.discarded.Load() {
				discarded++
			}
		}
		if discarded >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if p.Idle() != 1 || discarded != 2 {
		t.Fatalf("%d parked and %d discarded, want 1 and 2 (MaxIdle 1)", p.Idle(), discarded)
	}
}

// A Get waiting for a reset in progress gets that session, not a claim
// made after it.
func TestPoolGetWaiterBeforeLaterClaim(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.Close()
	a, hold, got := getWaitingOnReset(t, p, context.Background())
	c := p.Claim("k")
	close(hold) // the reset ends with both waiting
	if s := <-got; s != a {
		t.Fatalf("the waiting Get got %v, want a", s)
	}
	if s := c.Withdraw(); s != nil {
		t.Fatalf("the later claim got %v", s)
	}
}

// waitResets waits until no reset is under way in p.
func waitResets(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		resetting := p.reset
		p.mu.Unlock()
		if resetting == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d resets still under way after 5 s", resetting)
		}
		time.Sleep(time.Millisecond)
	}
}

// A Get that gives up its wait (its client gone) as the reset it waited
// for parks the session lets a waiting claim have it.
func TestPoolGetGoneHandsToClaim(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a, hold, got := getWaitingOnReset(t, p, ctx)
	c := p.Claim("k")
	// The session parks for the waiting Get, whose client has gone.
	p.mu.Lock()
	cancel()
	p.mu.Unlock()
	close(hold)
	if s := <-got; s != nil && s != a {
		t.Fatalf("the Get got %v", s)
	} else if s == a {
		return // the Get took it before it saw its end: nothing stranded
	}
	select {
	case s := <-c.Got():
		if s != a {
			t.Fatalf("the claim got %v, want a", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the claim got nothing; %d parked", p.Idle())
	}
}

// getWaitingOnReset puts session a under "k" with its reset held until
// hold is closed, and has a Get (within ctx) wait for it: its result
// comes on got.
func getWaitingOnReset(t *testing.T, p *Pool, ctx context.Context) (a *fakeSession, hold chan struct{}, got chan Pooled) {
	t.Helper()
	a = newFake("a")
	hold = make(chan struct{})
	a.hold = hold
	p.Put("k", a)
	got = make(chan Pooled, 1)
	go func() { got <- p.Get(ctx, "k", 10*time.Second) }()
	waitGetWaiting(t, p, "k")
	return a, hold, got
}

// waitGetWaiting waits until a Get waits for a reset of key.
func waitGetWaiting(t *testing.T, p *Pool, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		waiting := p.keys[key] != nil && p.keys[key].waiters == 1
		p.mu.Unlock()
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Get never waited for the reset")
		}
		time.Sleep(time.Millisecond)
	}
}
