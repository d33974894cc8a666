package health

import (
	"context"
	"sync"
	"time"
)

// DefaultBackendCacheTTL is how long a backend check's result answers
// readiness probes: a few seconds, so that a kubelet probing every few
// seconds, a load balancer and a person with curl together cost the
// upstreams one check per TTL, while a database that goes away still
// shows within one probe period.
const DefaultBackendCacheTTL = 3 * time.Second

// sharedCheck runs one backend check for every probe that asks while it
// runs, and keeps its result for ttl. The check runs on its own context
// (timeout), not a probe's: a probe that gives up does not fail the
// check for the others waiting on it.
type sharedCheck struct {
	check   func(context.Context) error
	timeout time.Duration
	ttl     time.Duration

	mu      sync.Mutex
	running chan struct{} // closed when the check in flight ends; nil: none
	err     error
	at      time.Time // when err was found; zero: never
}

// result is the latest check's result, running a new check first when the
// last is older than ttl. fresh says this call's check produced it (so
// one failure is logged once, not per probe).
func (s *sharedCheck) result(ctx context.Context) (err error, fresh bool) {
	s.mu.Lock()
	if !s.at.IsZero() && s.ttl > 0 && time.Since(s.at) < s.ttl {
		err := s.err
		s.mu.Unlock()
		return err, false
	}
	running := s.running
	mine := running == nil
	if mine {
		running = make(chan struct{})
		s.running = running
		go s.run(running)
	}
	s.mu.Unlock()
	select {
	case <-running:
	case <-ctx.Done():
		return ctx.Err(), false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err, mine
}

func (s *sharedCheck) run(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := s.check(ctx)
	s.mu.Lock()
	s.err, s.at, s.running = err, time.Now(), nil
	s.mu.Unlock()
	close(done)
}
