package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// WarmSet keeps pre-warmed connections (Warm) per Aurora instance, for
// an engine whose logins the Router sends to an instance endpoint rather
// than the configured one: connections ready for the cluster's DNS name
// would never serve such a login. An instance's connections are made
// ready from the first login that goes there (that one dials), and kept
// while logins keep going there: an instance no login has taken one of
// for WarmSetIdle (a demoted writer, a reader the router stopped
// choosing) has its Warm closed. A connection stays with the instance it
// was dialed to, whatever role the instance has since, so a login only
// ever gets one to the instance the router chose for it. Safe for
// concurrent use; a nil WarmSet has no connections.
type WarmSet[T any] struct {
	o    WarmOptions[T] // each instance's, but Dial
	dial func(ctx context.Context, d Destination) (T, error)

	mu      sync.Mutex
	warms   map[string]*instanceWarm[T] // by Destination.HostPort
	closed  bool
	stop    chan struct{}
	janitor sync.WaitGroup // Close waits for it: a closeIdle under way ends its Warms first
}

type instanceWarm[T any] struct {
	w    *Warm[T]
	used time.Time // the last Take
}

// WarmSetIdle is how long an instance's ready connections are kept after
// the last login that took one: long enough for a steady trickle of
// clients, short enough that a demoted writer's go within a minute.
const WarmSetIdle = time.Minute

// NewWarmSet returns a WarmSet making each instance's connections with
// dial and o (o.Dial is not used); Start starts its upkeep.
func NewWarmSet[T any](o WarmOptions[T], dial func(ctx context.Context, d Destination) (T, error)) *WarmSet[T] {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &WarmSet[T]{o: o, dial: dial, warms: map[string]*instanceWarm[T]{}, stop: make(chan struct{})}
}

// Start begins closing the Warms of instances no login goes to any more.
func (s *WarmSet[T]) Start() {
	if s == nil {
		return
	}
	s.janitor.Go(s.upkeep)
}

// Take returns a ready connection to d, or false: the caller dials. The
// first Take for an instance starts keeping its connections ready.
func (s *WarmSet[T]) Take(d Destination) (T, bool) {
	var zero T
	if s == nil {
		return zero, false
	}
	key := d.HostPort()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return zero, false
	}
	iw := s.warms[key]
	if iw == nil {
		o := s.o
		o.Dial = func(ctx context.Context) (T, error) { return s.dial(ctx, d) }
		o.Logger = o.Logger.With("instance", key)
		iw = &instanceWarm[T]{w: NewWarm(o)}
		s.warms[key] = iw
		iw.w.Start()
	}
	iw.used = time.Now()
	s.mu.Unlock()
	return iw.w.Take()
}

// Stale is Warm.Stale for the instance d.
func (s *WarmSet[T]) Stale(d Destination, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	iw := s.warms[d.HostPort()]
	s.mu.Unlock()
	if iw != nil {
		iw.w.Stale(err)
	}
}

// Ready is how many connections to d are ready now.
func (s *WarmSet[T]) Ready(d Destination) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	iw := s.warms[d.HostPort()]
	s.mu.Unlock()
	if iw == nil {
		return 0
	}
	return iw.w.Ready()
}

// Close stops the upkeep and closes every instance's Warm.
func (s *WarmSet[T]) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	warms := s.warms
	s.warms = nil
	close(s.stop)
	s.mu.Unlock()
	s.janitor.Wait() // it may be closing Warms it took out of the map
	var wg sync.WaitGroup
	for _, iw := range warms {
		wg.Go(iw.w.Close)
	}
	wg.Wait()
}

// upkeep closes the Warms no Take has used for WarmSetIdle.
func (s *WarmSet[T]) upkeep() {
	t := time.NewTicker(WarmSetIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.closeIdle(time.Now().Add(-WarmSetIdle))
	}
}

// closeIdle closes the Warms last used before cutoff.
func (s *WarmSet[T]) closeIdle(cutoff time.Time) {
	s.mu.Lock()
	var idle []*Warm[T]
	for key, iw := range s.warms {
		if iw.used.Before(cutoff) {
			idle = append(idle, iw.w)
			delete(s.warms, key)
		}
	}
	s.mu.Unlock()
	for _, w := range idle {
		w.Close()
	}
}
