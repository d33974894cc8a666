package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// idleTimer ends a session in which no byte has moved either way for its
// timeout. The relay's hot path only stores the time of each chunk (touch:
// one atomic store, no timer work); the timer, when it fires, looks at
// that time and either ends the session or sleeps for the rest of the
// period. A session with traffic therefore costs one timer wake-up per
// timeout, not one timer reset per chunk.
//
// A nil *idleTimer is no timeout: its methods do nothing.
type idleTimer struct {
	timeout time.Duration
	onIdle  func()
	last    atomic.Int64 // unix nanoseconds of the last chunk either way
	idled   atomic.Bool  // onIdle was called

	mu      sync.Mutex // guards timer and stopped, so stop is final
	timer   *time.Timer
	stopped bool
}

// startIdleTimer calls onIdle (once, on the timer's goroutine) when
// touch has not been called for timeout. timeout must be positive.
func startIdleTimer(timeout time.Duration, onIdle func()) *idleTimer {
	t := &idleTimer{timeout: timeout, onIdle: onIdle}
	t.touch()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = time.AfterFunc(timeout, t.check)
	return t
}

// touch records activity now.
func (t *idleTimer) touch() {
	if t != nil {
		t.last.Store(time.Now().UnixNano())
	}
}

// check runs when the timer fires.
func (t *idleTimer) check() {
	left := time.Until(time.Unix(0, t.last.Load()).Add(t.timeout))
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	if left > 0 {
		t.timer.Reset(left)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.idled.Store(true)
	t.onIdle()
}

// fired reports whether the session was ended for being idle.
func (t *idleTimer) fired() bool { return t != nil && t.idled.Load() }

// stop ends the timer: once it returns the timer is never re-armed (an
// onIdle already under way may still finish).
func (t *idleTimer) stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.timer.Stop()
}
