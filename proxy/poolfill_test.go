package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// filler counts its logins and hands out fakes; failing makes it fail.
type filler struct {
	mu      sync.Mutex
	made    []*fakeSession
	failing atomic.Bool
	calls   atomic.Int32
	block   chan struct{} // nil: answer at once
}

func (f *filler) fill(ctx context.Context) (Pooled, error) {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.failing.Load() {
		return nil, errors.New("login refused")
	}
	s := newFake("filled")
	f.mu.Lock()
	f.made = append(f.made, s)
	f.mu.Unlock()
	return s, nil
}

func waitIdle(t *testing.T, p *Pool, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Idle() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d parked, want %d", p.Idle(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPoolKeepsItsMinimum: once a key is kept, the pool logs in sessions
// until its minimum is parked, again as clients take them, and never more
// than the minimum (clients' own parked sessions count toward it).
func TestPoolKeepsItsMinimum(t *testing.T) {
	p := NewPool(PoolOptions{MinIdlePerKey: 3})
	defer p.Close()
	f := &filler{}
	a := newFake("a")
	parkAll(t, p, "k", a) // the first client left
	p.Keep("k", f.fill)
	waitIdle(t, p, 3)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d logins for a minimum of 3 with one parked, want 2", n)
	}
	var got []Pooled
	for range 3 {
		s := p.Get(context.Background(), "k", 0)
		if s == nil {
			t.Fatal("a client found none parked")
		}
		got = append(got, s)
	}
	waitIdle(t, p, 3) // made up in the background
	if n := f.calls.Load(); n != 5 {
		t.Fatalf("%d logins after 3 taken, want 5", n)
	}
	if p.Get(context.Background(), "other", 0) != nil {
		t.Fatal("another key got a session")
	}
	// Sessions put back on top of the minimum stay up to the per-key cap,
	// with no login.
	for _, s := range got {
		parkAll(t, p, "k", s.(*fakeSession))
	}
	if n := f.calls.Load(); n != 5 {
		t.Fatalf("%d logins after 3 put back, want 5", n)
	}
}

// TestPoolMinimumFailingLoginsPause: a fill that fails is not retried at
// once (a down upstream is not hammered); Close waits for the fills in
// progress and discards what they bring.
func TestPoolMinimumFailingLoginsPause(t *testing.T) {
	p := NewPool(PoolOptions{MinIdlePerKey: 2})
	f := &filler{}
	f.failing.Store(true)
	p.Keep("k", f.fill)
	deadline := time.Now().Add(5 * time.Second)
	for f.calls.Load() < 2 || p.Filling() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fills did not end")
		}
		time.Sleep(time.Millisecond)
	}
	p.Keep("k", f.fill) // a client left again: within the pause, no retry
	time.Sleep(50 * time.Millisecond)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d logins within the pause after failures, want 2", n)
	}
	p.Close()

	p = NewPool(PoolOptions{MinIdlePerKey: 1})
	f = &filler{block: make(chan struct{})}
	p.Keep("k", f.fill)
	for p.Filling() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close() // cuts the fill's context and waits for it
	if p.Filling() != 0 {
		t.Fatal("Close returned with a fill in progress")
	}
}

// TestPoolMinimumRecycledAtLifetime: the reaper ends sessions past their
// lifetime, the minimum's too, and they are logged in anew; the idle
// timeout spares the minimum of a key in use.
func TestPoolMinimumRecycledAtLifetime(t *testing.T) {
	p := NewPool(PoolOptions{MinIdlePerKey: 2, MaxLifetime: time.Hour, IdleTimeout: time.Minute})
	defer p.Close()
	f := &filler{}
	p.Keep("k", f.fill)
	waitIdle(t, p, 2)
	p.reap(time.Now().Add(2 * time.Second)) // nothing due
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
	p.mu.Lock()
	p.keys["k"].used = time.Now().Add(time.Minute) // in use, as the reaper will see it
	p.mu.Unlock()
	p.reap(time.Now().Add(90 * time.Second)) // idle past the timeout, key in use: spared
	if p.Idle() != 2 || f.calls.Load() != 2 {
		t.Fatalf("idle timeout of a kept key's minimum: %d parked, %d logins; want 2, 2", p.Idle(), f.calls.Load())
	}
	p.mu.Lock()
	p.keys["k"].used = time.Now().Add(2 * time.Hour) // still in use then
	p.mu.Unlock()
	p.reap(time.Now().Add(2 * time.Hour)) // past the lifetime: ended, logged in anew
	waitIdle(t, p, 2)
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("%d logins after the lifetime, want 4", n)
	}
	f.mu.Lock()
	for _, s := range f.made[:2] {
		if !s.discarded.Load() {
			t.Error("a session past its lifetime was not discarded")
		}
	}
	f.mu.Unlock()
	// No client for the idle timeout: the key is no longer kept.
	p.reap(time.Now().Add(3 * time.Hour)) // past the lifetime and the idle timeout
	waitIdle(t, p, 0)
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("%d logins for a key nobody used, want 4", n)
	}
}

// TestPoolMinimumStopsWhenNotRouted: a fill that says its Aurora instance
// is no longer where the key's clients go (ErrNotRouted) ends the key's
// minimum at once: no pause and retry, no more logins, however often a
// client takes from the key; a later Keep (a client parked a session of
// the key again) asks for it anew.
func TestPoolMinimumStopsWhenNotRouted(t *testing.T) {
	p := NewPool(PoolOptions{MinIdlePerKey: 2, IdleTimeout: 10 * time.Second})
	defer p.Close()
	var calls atomic.Int32
	notRouted := func(context.Context) (Pooled, error) { calls.Add(1); return nil, ErrNotRouted }
	p.Keep("k", notRouted)
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 2 || p.Filling() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fills did not end")
		}
		time.Sleep(time.Millisecond)
	}
	parkAll(t, p, "k", newFake("a"))
	if p.Get(context.Background(), "k", 0) == nil {
		t.Fatal("the parked session was not handed over")
	}
	time.Sleep(2500 * time.Millisecond) // past a failed fill's pause (1 s) and the reaper's next ticks (every second)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d fills after the instance was no longer routed to, want the first 2 only", n)
	}
	f := &filler{}
	p.Keep("k", f.fill)
	waitIdle(t, p, 2)
}

// TestPoolDropHostReachesResetsAndFills: a session being reset, or
// logged in ahead, when DropHost closes its instance's sessions (a writer
// change) is not parked once done: it would otherwise wait on a demoted
// instance until its idle timeout.
func TestPoolDropHostReachesResetsAndFills(t *testing.T) {
	p := NewPool(PoolOptions{MinIdlePerKey: 1})
	defer p.Close()
	resetting := newFake("resetting")
	resetting.resetTook = 200 * time.Millisecond
	p.Put("k", resetting)
	f := &filler{block: make(chan struct{})}
	p.Keep("k2", f.fill)
	for p.Filling() == 0 {
		time.Sleep(time.Millisecond)
	}
	if n := p.DropHost("db:5432"); n != 0 {
		t.Fatalf("DropHost closed %d parked sessions, want none parked yet", n)
	}
	close(f.block)
	deadline := time.Now().Add(5 * time.Second)
	for p.Filling() > 0 || !resetting.discarded.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("filling %d, the reset one discarded %v", p.Filling(), resetting.discarded.Load())
		}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	filled := f.made
	f.mu.Unlock()
	if len(filled) == 0 || !filled[0].discarded.Load() {
		t.Fatal("the session logged in ahead across the DropHost was not discarded")
	}
}
