package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestGateTryEnterEvictsOldestSilent: a full gate gives a newcomer the
// place of the oldest holder silent for the grace period; a shielded
// holder (its client spoke) and a young one are never taken; with none to
// evict the newcomer is refused.
func TestGateTryEnterEvictsOldestSilent(t *testing.T) {
	// In a bubble the clock is the fake one: no stall of a loaded machine
	// makes the young holders old enough to evict.
	synctest.Test(t, func(t *testing.T) {
		const grace = 100 * time.Millisecond
		g := NewGate(3, grace)
		var cut [3]atomic.Bool
		var passes [3]*Pass
		for i := range passes {
			p, ok := g.TryEnter()
			if !ok {
				t.Fatalf("enter %d refused with room left", i)
			}
			p.OnEvict(func() { cut[i].Store(true) })
			passes[i] = p
		}
		passes[0].Shield() // the oldest has spoken: not evictable
		if _, ok := g.TryEnter(); ok {
			t.Fatal("a full gate of young holders admitted a newcomer")
		}
		if _, refused := g.Counts(); refused != 1 {
			t.Fatalf("refused %d, want 1", refused)
		}
		time.Sleep(grace + 20*time.Millisecond)
		p, ok := g.TryEnter()
		if !ok {
			t.Fatal("no place made although holders were silent past the grace")
		}
		if cut[0].Load() || !cut[1].Load() || cut[2].Load() {
			t.Fatalf("cut %v %v %v: want only the oldest evictable (#1)", cut[0].Load(), cut[1].Load(), cut[2].Load())
		}
		if !passes[1].Evicted() || passes[0].Evicted() {
			t.Fatal("Evicted() does not say who was evicted")
		}
		if g.Held() != 3 {
			t.Fatalf("held %d after an eviction, want 3 (the evicted place went to the newcomer)", g.Held())
		}
		passes[1].Leave() // the evicted one's handler ends: no place freed twice
		if g.Held() != 3 {
			t.Fatalf("held %d after the evicted holder left, want 3", g.Held())
		}
		p.Leave()
		p.Leave()
		passes[0].Leave()
		passes[2].Leave()
		if g.Held() != 0 {
			t.Fatalf("held %d after everyone left", g.Held())
		}
		// OnEvict after the eviction still cuts.
		var late atomic.Bool
		passes[1].OnEvict(func() { late.Store(true) })
		if !late.Load() {
			t.Error("OnEvict on an already evicted pass did not cut")
		}
	})
}

// TestGateNilAdmitsAll: no cap is a nil gate whose passes do nothing.
func TestGateNilAdmitsAll(t *testing.T) {
	g := NewGate(0, 0)
	if g != nil {
		t.Fatal("NewGate(0) is not nil")
	}
	p, ok := g.TryEnter()
	if !ok || p != nil {
		t.Fatal("nil gate refused")
	}
	p.Shield()
	p.Expose()
	p.OnEvict(func() { t.Error("nil pass cut") })
	p.Leave()
	if q, err := g.Enter(context.Background()); err != nil || q != nil || p.Evicted() || g.Held() != 0 || g.Max() != 0 {
		t.Fatal("nil gate misbehaves")
	}
}

// TestGateEnterWaitsNewestFirst: Enter waits while the gate is full and a
// freed place goes to the newest waiter; a waiter whose context ends
// leaves the queue.
func TestGateEnterWaitsNewestFirst(t *testing.T) {
	g := NewGate(1, time.Hour)
	ctx := context.Background()
	first, err := g.Enter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := g.Enter(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got <- i
			time.Sleep(10 * time.Millisecond)
			p.Leave()
		}()
		waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.waiters) == i+1 })
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter past its context: %v", err)
	}
	first.Leave()
	wg.Wait()
	close(got)
	var order []int
	for i := range got {
		order = append(order, i)
	}
	if len(order) != 3 || order[0] != 2 || order[1] != 1 || order[2] != 0 {
		t.Fatalf("served in order %v, want newest first [2 1 0]", order)
	}
	if g.Held() != 0 {
		t.Fatalf("held %d at the end", g.Held())
	}
}

// TestGateEnterEvictsExposedAfterGrace: a waiter makes room by evicting
// the oldest holder exposed (waiting on its client) for the grace period,
// but gets the place only once the evicted holder has left: the cap on
// upstream connections is never exceeded. A holder not yet exposed (still
// dialing) is never evicted.
func TestGateEnterEvictsExposedAfterGrace(t *testing.T) {
	const grace = 50 * time.Millisecond
	g := NewGate(2, grace)
	ctx := context.Background()
	dialing, _ := g.Enter(ctx)
	silent, _ := g.Enter(ctx)
	dialing.OnEvict(func() { t.Error("a holder that was never exposed was evicted") })
	evicted := make(chan struct{})
	silent.OnEvict(func() { close(evicted) })
	silent.Expose()
	done := make(chan *Pass)
	go func() {
		p, err := g.Enter(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	select {
	case <-evicted:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent holder was not evicted")
	}
	select {
	case <-done:
		t.Fatal("the waiter got a place before the evicted holder left")
	case <-time.After(50 * time.Millisecond):
	}
	if g.Held() != 2 {
		t.Fatalf("held %d, want 2", g.Held())
	}
	silent.Leave()
	p := <-done
	if g.Held() != 2 {
		t.Fatalf("held %d after the hand-over, want 2", g.Held())
	}
	p.Leave()
	dialing.Leave()
}

// TestGateEnterEvictsOncePerWaiter: several evictable holders and one
// waiter: one eviction, not all of them.
func TestGateEnterEvictsOncePerWaiter(t *testing.T) {
	g := NewGate(3, time.Millisecond)
	ctx := context.Background()
	var cuts atomic.Int32
	var held []*Pass
	for range 3 {
		p, _ := g.Enter(ctx)
		p.OnEvict(func() { cuts.Add(1) })
		p.Expose()
		held = append(held, p)
	}
	time.Sleep(5 * time.Millisecond)
	got := make(chan *Pass)
	go func() { p, _ := g.Enter(ctx); got <- p }()
	waitUntil(t, func() bool { return cuts.Load() >= 1 })
	time.Sleep(20 * time.Millisecond)
	if n := cuts.Load(); n != 1 {
		t.Fatalf("%d evictions for one waiter", n)
	}
	for _, p := range held {
		if p.Evicted() {
			p.Leave()
		}
	}
	(<-got).Leave()
	for _, p := range held {
		p.Leave()
	}
	if g.Held() != 0 {
		t.Fatalf("held %d at the end", g.Held())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
