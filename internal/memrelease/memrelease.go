// Package memrelease hands the memory a burst of work left behind back to
// the system once the process goes quiet.
//
// Why: the Go runtime keeps the pages its garbage collector freed, up to
// the heap goal, for the allocations to come. For the proxy that means a
// storm of logins (each allocates about 90 KiB: TLS handshake, request
// signing, the engine's login) leaves the process at the storm's peak
// size for as long as the connections it opened stay idle, although all
// that is live is the sessions' own few KiB each (issue 15: memory per
// idle connection). Run watches the runtime's own figures and, when the
// process has stopped allocating while much of its heap is free or
// garbage, collects and returns the free pages (debug.FreeOSMemory).
//
// It costs nothing while the process works (it only reads runtime
// metrics once a tick), and a collection and a release once per burst,
// at most once per Gap.
package memrelease

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options tune Run; the zero value is the proxy's.
type Options struct {
	// Every is how often the figures are read (default 1s).
	Every time.Duration
	// Quiet is the most the process may allocate during one tick and
	// still count as quiet (default 256 KiB: a few logins a second).
	Quiet uint64
	// Min is the least memory (free pages and garbage) worth a release
	// (default 4 MiB).
	Min uint64
	// Gap is the least time between two releases (default 10s).
	Gap time.Duration
	// Release returns the memory (default debug.FreeOSMemory).
	Release func()
	// Log hears of each release, at debug level (nil: no log).
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Quiet == 0 {
		o.Quiet = 256 << 10
	}
	if o.Min == 0 {
		o.Min = 4 << 20
	}
	if o.Gap <= 0 {
		o.Gap = 10 * time.Second
	}
	if o.Release == nil {
		o.Release = debug.FreeOSMemory
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Run releases memory after bursts until ctx ends.
func Run(ctx context.Context, o Options) {
	o.defaults()
	t := time.NewTicker(o.Every)
	defer t.Stop()
	prev := read()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := read()
		if reclaim, ok := worth(prev, cur, o); ok && time.Since(last) >= o.Gap {
			start := time.Now()
			o.Release()
			last = time.Now()
			o.Log.Debug("returned memory after a burst", "reclaimable_bytes", reclaim, "took", last.Sub(start))
			cur = read() // the release's own allocations do not make the next tick busy
		}
		prev = cur
	}
}

// sample is what Run reads from the runtime each tick.
type sample struct {
	allocs  uint64 // bytes allocated since the process started
	live    uint64 // the heap the last collection found live
	objects uint64 // the heap in objects now: live, and garbage not yet collected
	free    uint64 // free heap pages still backed by memory
	stacks  uint64 // goroutine stacks
}

var names = [...]string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes", "/memory/classes/heap/stacks:bytes"}

func read() sample {
	var s [len(names)]metrics.Sample
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s[:])
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return sample{allocs: v(0), live: v(1), objects: v(2), free: v(3), stacks: v(4)}
}

// worth says whether a release is worth it at cur (prev is a tick
// earlier), and how much it would reclaim: the process was quiet during
// the tick, and the free pages and garbage are at least Min and a quarter
// of what is live (heap and stacks), so that a process already near its
// live size is left alone.
func worth(prev, cur sample, o Options) (reclaim uint64, ok bool) {
	if cur.allocs-prev.allocs > o.Quiet {
		return 0, false
	}
	reclaim = cur.free
	if cur.objects > cur.live {
		reclaim += cur.objects - cur.live
	}
	return reclaim, reclaim >= o.Min && reclaim >= (cur.live+cur.stacks)/4
}

// Start runs Run on a goroutine of its own; stop ends it and waits.
func Start(o Options) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, o)
	}()
	return func() {
		cancel()
		<-done
	}
}
