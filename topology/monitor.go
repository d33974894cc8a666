package topology

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Cadence defaults (the choices): the topology is looked at every
// 30 s normally, and every 100 ms for up to 60 s while a failover is
// suspected.
const (
	DefaultNormal  = 30 * time.Second
	DefaultFast    = 100 * time.Millisecond
	DefaultFastFor = 60 * time.Second
)

// Monitor keeps a cluster's View current by calling Poll: every Normal,
// and every Fast while a failover is suspected (Suspect), until a writer
// other than the one at the time of the suspicion is confirmed or FastFor
// has passed, and while the last view has no confirmed writer. A failed poll changes nothing (a monitor that cannot reach
// the cluster must not make the proxy act on a topology it did not see);
// the first failure after a success is itself a suspicion.
type Monitor struct {
	// Poll looks at the topology once; it bounds its own time.
	Poll    func(ctx context.Context) (View, error)
	Normal  time.Duration // 0: DefaultNormal
	Fast    time.Duration // 0: DefaultFast
	FastFor time.Duration // 0: DefaultFastFor
	Log     *slog.Logger
	// OnView, when set, hears each view that differs from the last one,
	// on the monitor's goroutine, before waiters are woken.
	OnView func(old, cur View)

	mu        sync.Mutex
	view      View
	have      bool
	changed   chan struct{} // closed when the view changes
	fastUntil time.Time     // zero: normal cadence
	fastFrom  string        // the writer when the suspicion began
	wake      chan struct{}
	polls     int
}

func (m *Monitor) init() {
	if m.changed == nil {
		m.changed = make(chan struct{})
		m.wake = make(chan struct{}, 1)
	}
	if m.Normal <= 0 {
		m.Normal = DefaultNormal
	}
	if m.Fast <= 0 {
		m.Fast = DefaultFast
	}
	if m.FastFor <= 0 {
		m.FastFor = DefaultFastFor
	}
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
}

// Run polls until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	m.mu.Lock()
	m.init()
	wake := m.wake
	m.mu.Unlock()
	ok := true
	for {
		v, err := m.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.Log.Debug("topology poll failed", "err", err)
			if ok {
				m.Suspect()
			}
		} else {
			m.record(v)
		}
		ok = err == nil
		t := time.NewTimer(m.interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// interval is the wait before the next poll: Fast while suspecting.
func (m *Monitor) interval() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.fastUntil.IsZero() && time.Now().Before(m.fastUntil) {
		return m.Fast
	}
	m.fastUntil = time.Time{}
	if m.have && m.view.Writer == "" {
		return m.Fast // no writer confirmed: logins are held for one
	}
	return m.Normal
}

// record takes a successful poll's view.
func (m *Monitor) record(v View) {
	m.mu.Lock()
	m.polls++
	old, had := m.view, m.have
	if !m.fastUntil.IsZero() && v.Writer != "" && v.Writer != m.fastFrom {
		m.fastUntil = time.Time{} // the new writer is confirmed
	}
	m.view, m.have = v, true
	if had && old.Same(v) {
		m.mu.Unlock()
		return
	}
	ch := m.changed
	m.changed = make(chan struct{})
	onView := m.OnView
	m.mu.Unlock()
	if old.Writer != v.Writer {
		m.Log.Info("topology: writer", "writer", v.Writer, "was", old.Writer, "readers", v.Readers)
	}
	if onView != nil {
		onView(old, v)
	}
	close(ch)
}

// Suspect says a failover may be under way (a session on the writer died,
// a login to it failed): poll now, then every Fast for up to FastFor,
// until another writer is confirmed.
func (m *Monitor) Suspect() {
	m.mu.Lock()
	m.init()
	if m.fastUntil.IsZero() {
		m.fastFrom = m.view.Writer
		m.Log.Info("topology: failover suspected; polling fast", "writer", m.view.Writer)
	}
	m.fastUntil = time.Now().Add(m.FastFor)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Current is the last view, whether there is one, and a channel closed
// when the next different view arrives.
func (m *Monitor) Current() (View, bool, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return m.view, m.have, m.changed
}

// Suspecting reports whether the monitor polls fast now.
func (m *Monitor) Suspecting() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.fastUntil.IsZero() && time.Now().Before(m.fastUntil)
}

// Polls is how many polls have succeeded (for tests and metrics).
func (m *Monitor) Polls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.polls
}
