package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSession is a Pooled whose reset takes resetTook and fails with
// resetErr; it records whether it was discarded.
type fakeSession struct {
	name      string
	born      time.Time
	host      string
	resetTook time.Duration
	hold      chan struct{} // when set, the reset waits for it to close first
	resetErr  error
	discarded atomic.Bool
}

func (f *fakeSession) Reset(ctx context.Context) error {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-time.After(f.resetTook):
		return f.resetErr
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (f *fakeSession) Discard()        { f.discarded.Store(true) }
func (f *fakeSession) Born() time.Time { return f.born }
func (f *fakeSession) Hosts() []string { return []string{f.host} }

func newFake(name string) *fakeSession {
	return &fakeSession{name: name, born: time.Now(), host: "db:5432"}
}

// parkAll puts each session under key and waits until all are parked.
func parkAll(t *testing.T, p *Pool, key string, ss ...*fakeSession) {
	t.Helper()
	want := p.Idle() + len(ss)
	for _, s := range ss {
		p.Put(key, s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Idle() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d parked, want %d", p.Idle(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPoolGivesOnlyItsKeysSessions(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.Close()
	a := newFake("a")
	parkAll(t, p, "k1", a)
	if got := p.Get(context.Background(), "k2", 0); got != nil {
		t.Fatalf("key k2 got %v, parked under k1", got)
	}
	if got := p.Get(context.Background(), "k1", 0); got != a {
		t.Fatalf("key k1 got %v, want a", got)
	}
	if got := p.Get(context.Background(), "k1", 0); got != nil {
		t.Fatalf("a session was handed out twice")
	}
}

func TestPoolLimits(t *testing.T) {
	p := NewPool(PoolOptions{MaxIdlePerKey: 2, MaxIdle: 3})
	defer p.Close()
	a, b, c := newFake("a"), newFake("b"), newFake("c")
	parkAll(t, p, "k1", a, b)
	p.Put("k1", c) // over the key's cap: discarded at once
	if !c.discarded.Load() || p.Idle() != 2 {
		t.Fatalf("third session for one key: discarded %v, %d parked", c.discarded.Load(), p.Idle())
	}
	d, e := newFake("d"), newFake("e")
	parkAll(t, p, "k2", d)
	p.Put("k2", e) // over the total: the longest parked (a or b) makes room
	deadline := time.Now().Add(5 * time.Second)
	for !a.discarded.Load() && !b.discarded.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if a.discarded.Load() == b.discarded.Load() || d.discarded.Load() || e.discarded.Load() {
		t.Fatalf("over the total cap: discarded a %v, b %v (one of them, parked first), d %v, e %v", a.discarded.Load(), b.discarded.Load(), d.discarded.Load(), e.discarded.Load())
	}
	old := newFake("old")
	old.born = time.Now().Add(-2 * time.Hour)
	p.Put("k3", old) // past its lifetime
	if !old.discarded.Load() {
		t.Fatal("a session past its lifetime was parked")
	}
}

func TestPoolFailedResetDiscards(t *testing.T) {
	p := NewPool(PoolOptions{ResetTimeout: 50 * time.Millisecond})
	defer p.Close()
	bad, slow := newFake("bad"), newFake("slow")
	bad.resetErr = errors.New("not idle")
	slow.resetTook = time.Minute
	p.Put("k", bad)
	p.Put("k", slow)
	deadline := time.Now().Add(5 * time.Second)
	for !(bad.discarded.Load() && slow.discarded.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("discarded: failed reset %v, reset past its deadline %v", bad.discarded.Load(), slow.discarded.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if p.Idle() != 0 || p.Get(context.Background(), "k", 0) != nil {
		t.Fatal("a session whose reset failed was parked")
	}
}

func TestPoolGetWaitsForAResetInProgress(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.Close()
	a := newFake("a")
	a.resetTook = 100 * time.Millisecond
	p.Put("k", a)
	var got [2]Pooled
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = p.Get(context.Background(), "k", 5*time.Second) })
	}
	wg.Wait()
	if (got[0] == a) == (got[1] == a) {
		t.Fatalf("two clients waiting on one reset got %v and %v: want the session for one, nil (log in) for the other", got[0], got[1])
	}
}

func TestPoolDropHostAndClose(t *testing.T) {
	p := NewPool(PoolOptions{})
	a, b := newFake("a"), newFake("b")
	b.host = "other:5432"
	parkAll(t, p, "k", a, b)
	if n := p.DropHost("db:5432"); n != 1 || !a.discarded.Load() || b.discarded.Load() {
		t.Fatalf("DropHost dropped %d (a %v, b %v), want a only", n, a.discarded.Load(), b.discarded.Load())
	}
	p.Close()
	if !b.discarded.Load() || p.Idle() != 0 {
		t.Fatal("Close left a session parked")
	}
	c := newFake("c")
	p.Put("k", c)
	if !c.discarded.Load() {
		t.Fatal("a closed pool parked a session")
	}
	p.Close()
	var nilPool *Pool
	nilPool.Close()
}

func TestPoolReaperClosesIdle(t *testing.T) {
	// A minute: the pool's own reaper cannot take the session before the
	// test has seen it parked; the test reaps as of two minutes on.
	p := NewPool(PoolOptions{IdleTimeout: time.Minute})
	defer p.Close()
	a := newFake("a")
	parkAll(t, p, "k", a)
	p.reap(time.Now().Add(2 * time.Minute)) // what the reaper does on its tick
	if !a.discarded.Load() || p.Idle() != 0 {
		t.Fatal("an idle session outlived the idle timeout")
	}
}
