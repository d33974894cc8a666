package postgres

import (
	"context"
	"sync"
	"time"
)

// backendRef names one upstream backend: the address its cancels go to
// and its process id.
type backendRef struct {
	addr string
	pid  uint32
}

// inflight counts cancel requests being forwarded to each backend, so
// that a session whose client left can wait for them before it is reset
// and handed to another client: a cancel of the last client's that
// reached the server late would cancel the next client's query. (The
// reset itself is the barrier after that: a signal that lands during
// DISCARD ALL fails it, and the session is closed.)
type inflight struct {
	mu sync.Mutex
	n  map[backendRef]int
}

// start counts a cancel to b until the returned func runs.
func (f *inflight) start(b backendRef) (done func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[backendRef]int{}
	}
	f.n[b]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[b]--; f.n[b] <= 0 {
			delete(f.n, b)
		}
	}
}

// wait returns once no cancel to b is in flight, or ctx's error.
func (f *inflight) wait(ctx context.Context, b backendRef) error {
	for {
		f.mu.Lock()
		n := f.n[b]
		f.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
