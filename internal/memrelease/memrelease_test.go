package memrelease

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorth(t *testing.T) {
	o := Options{}
	o.defaults()
	base := sample{allocs: 1 << 30, live: 40 << 20, objects: 40 << 20, stacks: 40 << 20}
	cases := []struct {
		name string
		cur  sample
		want bool
	}{
		{"nothing to reclaim", base, false},
		{"a burst's free pages, quiet", with(base, func(s *sample) { s.free = 30 << 20 }), true},
		{"a burst's garbage, quiet", with(base, func(s *sample) { s.objects = 70 << 20 }), true},
		{"free pages while still allocating", with(base, func(s *sample) { s.free = 30 << 20; s.allocs += 1 << 20 }), false},
		{"less than Min", with(base, func(s *sample) { s.live, s.objects, s.stacks, s.free = 1<<20, 1<<20, 1<<20, 3<<20 }), false},
		{"less than a quarter of what is live", with(base, func(s *sample) { s.free = 15 << 20 }), false},
	}
	for _, c := range cases {
		if _, got := worth(base, c.cur, o); got != c.want {
			t.Errorf("%s: worth %v, want %v", c.name, got, c.want)
		}
	}
}

func with(s sample, f func(*sample)) sample { f(&s); return s }

// TestRunReleasesAfterABurst: after a burst of allocation the process goes
// quiet, and Run returns the memory, once (Gap), and stops with ctx.
func TestRunReleasesAfterABurst(t *testing.T) {
	var releases atomic.Int32
	released := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Every: 20 * time.Millisecond, Gap: time.Hour, Release: func() {
			releases.Add(1)
			runtime.GC()
			select {
			case released <- struct{}{}:
			default:
			}
		}})
	}()
	burst(64 << 20)
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("no release within 20s of a 64 MiB burst")
	}
	burst(64 << 20) // a second burst within Gap: no second release
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if n := releases.Load(); n != 1 {
		t.Errorf("%d releases, want 1 (the second burst came within Gap)", n)
	}
}

// burst allocates n bytes of garbage in 64 KiB pieces.
func burst(n int) {
	var keep [][]byte
	for range n / (64 << 10) {
		keep = append(keep, make([]byte, 64<<10))
		if len(keep) > 64 {
			keep = keep[:0]
		}
	}
	runtime.KeepAlive(keep)
}
