package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// WarmObserver hears what an upstream's pre-warmed connections do
// (metrics). An Observer that also implements it gets the calls.
type WarmObserver interface {
	// WarmDialed: a connection was made ready (ok) or failed to be.
	WarmDialed(ok bool)
	// WarmTaken: a login took a ready connection instead of dialing.
	WarmTaken()
	// WarmRecycled: a ready connection reached its age and was closed.
	WarmRecycled()
	// WarmStale: a login found its ready connection dead and dialed
	// afresh.
	WarmStale()
}

// WarmOptions configure a Warm.
type WarmOptions[T any] struct {
	// N is how many ready connections to keep.
	N int
	// MaxAge is when a ready connection is closed and replaced: before
	// the server's own handshake timeout ends it (PostgreSQL
	// authentication_timeout, MySQL connect_timeout).
	MaxAge time.Duration
	// Dial makes one ready connection (Postgres: dialed, TLS verified;
	// MySQL: dialed, greeting read).
	Dial func(ctx context.Context) (T, error)
	// Drop ends a ready connection nobody took, the way the server likes
	// (MySQL: a failed login, never a broken handshake).
	Drop func(T)
	// DialTimeout bounds each Dial; default 15 s.
	DialTimeout time.Duration
	Logger      *slog.Logger
	Observer    Observer // a WarmObserver hears; nil: none
}

// Warm keeps up to N upstream connections per endpoint dialed and ready
// for a login, so that a new client skips the dial and the TLS handshake
// (Postgres) or the wait for the greeting (MySQL). Each is replaced at
// MaxAge, before the server's handshake timeout would end it, and a taken
// one is replaced at once. A dial that fails is tried again after a pause
// that grows to 30 s: a down upstream is not hammered, and clients then
// dial as they would without Warm. Safe for concurrent use.
type Warm[T any] struct {
	o   WarmOptions[T]
	obs WarmObserver

	mu      sync.Mutex
	ready   []warmConn[T] // oldest first
	dialing int
	closed  bool
	wake    chan struct{} // capacity 1: the loop has something to do
	cancel  context.CancelFunc
	done    chan struct{}
}

type warmConn[T any] struct {
	c    T
	born time.Time
}

// NewWarm returns a Warm; Start begins filling it.
func NewWarm[T any](o WarmOptions[T]) *Warm[T] {
	if o.DialTimeout == 0 {
		o.DialTimeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Warm[T]{o: o, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.obs, _ = o.Observer.(WarmObserver)
	return w
}

// Start fills w and keeps it full until Close. A nil Warm does nothing.
func (w *Warm[T]) Start() {
	if w == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	go w.loop(ctx)
}

// Take returns the youngest ready connection (the most of the server's
// handshake timeout left), or false when none is ready: the caller dials.
// A nil Warm has none.
func (w *Warm[T]) Take() (T, bool) {
	var zero T
	if w == nil {
		return zero, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for len(w.ready) > 0 {
		last := w.ready[len(w.ready)-1]
		w.ready = w.ready[:len(w.ready)-1]
		if now.Sub(last.born) >= w.o.MaxAge {
			// Its time is up (the loop is late on a loaded machine).
			go w.o.Drop(last.c)
			continue
		}
		w.poke()
		if w.obs != nil {
			w.obs.WarmTaken()
		}
		return last.c, true
	}
	return zero, false
}

// Stale records that a taken connection turned out dead (the server
// restarted, or closed it early): the caller dials afresh.
func (w *Warm[T]) Stale(err error) {
	if w == nil {
		return
	}
	w.o.Logger.Info("a pre-warmed upstream connection was closed by the server; dialing afresh", "err", err)
	if w.obs != nil {
		w.obs.WarmStale()
	}
}

// Ready is how many connections are ready now.
func (w *Warm[T]) Ready() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ready)
}

// Close stops filling w and drops the ready connections. A nil Warm does
// nothing.
func (w *Warm[T]) Close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-w.done
	w.mu.Lock()
	ready := w.ready
	w.ready = nil
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range ready {
		wg.Go(func() { w.o.Drop(r.c) })
	}
	wg.Wait()
}

// poke wakes the loop; w.mu is held.
func (w *Warm[T]) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// loop keeps w full: it recycles what has reached MaxAge, starts dials
// for what is missing (several at once, so a burst of takes is made up
// quickly), and sleeps until the oldest is due or something changes.
func (w *Warm[T]) loop(ctx context.Context) {
	defer close(w.done)
	var dials sync.WaitGroup
	defer dials.Wait()
	var pause time.Duration // after a failed dial
	failed := make(chan struct{}, 1)
	for {
		now := time.Now()
		w.mu.Lock()
		var old []T
		for len(w.ready) > 0 && now.Sub(w.ready[0].born) >= w.o.MaxAge {
			old = append(old, w.ready[0].c)
			w.ready = w.ready[1:]
		}
		missing := w.o.N - len(w.ready) - w.dialing
		if pause > 0 {
			missing = min(missing, 1-w.dialing) // one probe at a time while failing
		}
		w.dialing += max(missing, 0)
		next := time.Hour
		if len(w.ready) > 0 {
			next = w.ready[0].born.Add(w.o.MaxAge).Sub(now)
		}
		w.mu.Unlock()
		for _, c := range old {
			if w.obs != nil {
				w.obs.WarmRecycled()
			}
			go w.o.Drop(c)
		}
		for range max(missing, 0) {
			dials.Go(func() {
				if !w.dialOne(ctx) {
					select {
					case failed <- struct{}{}:
					default:
					}
				}
			})
		}
		wait := next
		if pause > 0 {
			wait = min(wait, pause)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.wake:
		case <-failed:
			pause = min(max(2*pause, time.Second), 30*time.Second)
			t.Stop()
			// Sleep the pause before trying again.
			t2 := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t2.Stop()
				return
			case <-t2.C:
			}
			continue
		case <-t.C:
		}
		t.Stop()
		w.mu.Lock()
		if len(w.ready) > 0 {
			pause = 0 // a dial worked
		}
		w.mu.Unlock()
	}
}

// dialOne makes one ready connection and adds it; false when the dial
// failed.
func (w *Warm[T]) dialOne(ctx context.Context) bool {
	dctx, cancel := context.WithTimeout(ctx, w.o.DialTimeout)
	c, err := w.o.Dial(dctx)
	cancel()
	w.mu.Lock()
	w.dialing--
	if err != nil {
		w.mu.Unlock()
		if ctx.Err() == nil {
			w.o.Logger.Warn("cannot pre-warm an upstream connection; clients dial their own meanwhile", "err", err)
			if w.obs != nil {
				w.obs.WarmDialed(false)
			}
		}
		return false
	}
	if w.closed || ctx.Err() != nil {
		w.mu.Unlock()
		w.o.Drop(c)
		return true
	}
	w.ready = append(w.ready, warmConn[T]{c: c, born: time.Now()})
	w.poke()
	w.mu.Unlock()
	if w.obs != nil {
		w.obs.WarmDialed(true)
	}
	return true
}

// WarmConnGone says whether err, from a login on a pre-warmed connection,
// means the connection was dead before the login said anything (the
// server closed or reset it): the login is then worth one fresh dial.
func WarmConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
