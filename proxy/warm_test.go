package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeConns hands out numbered connections and records the dropped ones.
type fakeConns struct {
	mu      sync.Mutex
	next    int
	fail    bool
	dials   int
	dropped []int
}

func (f *fakeConns) dial(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	if f.fail {
		return 0, errors.New("refused")
	}
	f.next++
	return f.next, nil
}

func (f *fakeConns) drop(c int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped = append(f.dropped, c)
}

func (f *fakeConns) counts() (dials, dropped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials, len(f.dropped)
}

func TestWarmKeepsNReadyAndRecycles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeConns{}
		w := NewWarm(WarmOptions[int]{N: 3, MaxAge: 10 * time.Second, Dial: f.dial, Drop: f.drop})
		w.Start()
		defer w.Close()
		synctest.Wait()
		if w.Ready() != 3 {
			t.Fatalf("ready %d, want 3", w.Ready())
		}
		// A take (a second later) gets a ready one and is made up for at
		// once. (The three were dialed at the same instant, concurrently:
		// none is younger than another, so any may come.)
		time.Sleep(time.Second)
		c, ok := w.Take()
		if !ok || c < 1 || c > 3 {
			t.Fatalf("take: %d %v, want one of the first three", c, ok)
		}
		synctest.Wait()
		if w.Ready() != 3 {
			t.Fatalf("ready %d after a take, want 3 again", w.Ready())
		}
		// At MaxAge the first two are dropped and replaced.
		time.Sleep(9 * time.Second)
		synctest.Wait()
		dials, dropped := f.counts()
		if w.Ready() != 3 || dropped != 2 || dials != 6 {
			t.Fatalf("after MaxAge: ready %d, dropped %d, dials %d; want 3, 2, 6", w.Ready(), dropped, dials)
		}
		// The youngest goes first: the one dialed after the take lives on
		// until its own MaxAge, one second after the two replacements.
		c, _ = w.Take()
		if c != 6 && c != 5 {
			t.Errorf("took %d, want one of the two youngest (5, 6)", c)
		}
		synctest.Wait() // the take is made up for
		w.Close()
		if _, dropped := f.counts(); dropped != 5 {
			t.Errorf("dropped %d after Close, want 5 (2 recycled + the 3 ready)", dropped)
		}
		if _, ok := w.Take(); ok {
			t.Error("a closed Warm handed out a connection")
		}
	})
}

func TestWarmBacksOffWhenDialsFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeConns{fail: true}
		w := NewWarm(WarmOptions[int]{N: 4, MaxAge: time.Minute, Dial: f.dial, Drop: f.drop})
		w.Start()
		defer w.Close()
		time.Sleep(time.Minute)
		synctest.Wait()
		// 4 at first, then one probe per pause (1, 2, 4, 8, 16, 30 s...).
		dials, _ := f.counts()
		if dials > 12 {
			t.Fatalf("%d dials in a minute to a failing upstream, want a handful", dials)
		}
		if _, ok := w.Take(); ok {
			t.Fatal("took a connection that never was")
		}
		f.mu.Lock()
		f.fail = false
		f.mu.Unlock()
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if w.Ready() != 4 {
			t.Fatalf("ready %d once the upstream is back, want 4", w.Ready())
		}
	})
}

func TestWarmNilIsNone(t *testing.T) {
	var w *Warm[int]
	w.Start()
	if _, ok := w.Take(); ok || w.Ready() != 0 {
		t.Fatal("a nil Warm handed out a connection")
	}
	w.Stale(nil)
	w.Close()
}
