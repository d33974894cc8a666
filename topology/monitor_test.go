package topology

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// script is a fake cluster: each poll returns its current view, counted.
type script struct {
	mu    sync.Mutex
	view  View
	err   error
	polls int
}

func (s *script) poll(context.Context) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	return s.view, s.err
}

func (s *script) set(v View, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view, s.err = v, err
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

func startMonitor(t *testing.T, m *Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitView(t *testing.T, m *Monitor, writer string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		v, have, ch := m.Current()
		if have && v.Writer == writer {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("writer still %q, want %q", v.Writer, writer)
		}
	}
}

func TestTopologyMonitorCadence(t *testing.T) {
	s := &script{view: View{Writer: "a", Readers: []string{"b"}}}
	var mu sync.Mutex
	var changes [][2]string
	m := &Monitor{Poll: s.poll, Normal: time.Hour, Fast: 10 * time.Millisecond, FastFor: 300 * time.Millisecond,
		OnView: func(old, cur View) {
			mu.Lock()
			changes = append(changes, [2]string{old.Writer, cur.Writer})
			mu.Unlock()
		}}
	startMonitor(t, m)
	waitView(t, m, "a")
	// Normal cadence: an hour, so no second poll.
	time.Sleep(100 * time.Millisecond)
	if n := s.count(); n != 1 {
		t.Fatalf("%d polls in 100 ms at the normal cadence, want 1", n)
	}
	// A suspicion with the same writer: fast polling, for FastFor only.
	m.Suspect()
	time.Sleep(150 * time.Millisecond)
	if n := s.count(); n < 5 {
		t.Fatalf("%d polls in 150 ms while suspecting at 10 ms, want at least 5", n)
	}
	if !m.Suspecting() {
		t.Fatal("not suspecting 150 ms into a 300 ms suspicion")
	}
	time.Sleep(400 * time.Millisecond)
	if m.Suspecting() {
		t.Fatal("still suspecting after FastFor")
	}
	n := s.count()
	time.Sleep(100 * time.Millisecond)
	if s.count() != n {
		t.Fatal("still polling fast after FastFor")
	}
	// A failover: the writer becomes unconfirmed, then b. Fast polling
	// ends once b is confirmed.
	m.Suspect()
	s.set(View{Readers: []string{"a", "b"}}, nil)
	waitView(t, m, "")
	s.set(View{Writer: "b", Readers: []string{"a"}}, nil)
	waitView(t, m, "b")
	if m.Suspecting() {
		t.Fatal("still suspecting once a new writer is confirmed")
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][2]string{{"", "a"}, {"a", ""}, {"", "b"}}
	if len(changes) != len(want) {
		t.Fatalf("views heard %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("views heard %v, want %v", changes, want)
		}
	}
}

func TestTopologyMonitorFailedPollChangesNothing(t *testing.T) {
	s := &script{view: View{Writer: "a"}}
	m := &Monitor{Poll: s.poll, Normal: time.Hour, Fast: 10 * time.Millisecond, FastFor: time.Hour}
	startMonitor(t, m)
	waitView(t, m, "a")
	s.set(View{}, errors.New("unreachable"))
	m.Suspect()
	time.Sleep(100 * time.Millisecond)
	if v, _, _ := m.Current(); v.Writer != "a" {
		t.Fatalf("failed polls changed the view to %+v", v)
	}
	if !m.Suspecting() {
		t.Fatal("failed polls ended the suspicion")
	}
}

func TestTopologyMonitorPollsFastWithoutWriter(t *testing.T) {
	s := &script{view: View{Readers: []string{"a", "b"}}} // mid-failover: no writer confirmed
	m := &Monitor{Poll: s.poll, Normal: time.Hour, Fast: 10 * time.Millisecond}
	startMonitor(t, m)
	waitView(t, m, "")
	time.Sleep(100 * time.Millisecond)
	if n := s.count(); n < 4 {
		t.Fatalf("%d polls in 100 ms with no writer confirmed, want fast polling", n)
	}
	s.set(View{Writer: "b", Readers: []string{"a"}}, nil)
	waitView(t, m, "b")
	time.Sleep(30 * time.Millisecond)
	n := s.count()
	time.Sleep(100 * time.Millisecond)
	if s.count() > n+1 {
		t.Fatal("still polling fast once a writer is confirmed")
	}
}
