package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWarmSetPerInstance: connections are kept ready per instance from
// its first Take; a Take for one instance never gets another's; an
// instance no Take used within the idle cutoff has its connections
// dropped; Close drops the rest.
func TestWarmSetPerInstance(t *testing.T) {
	var dialed atomic.Int64
	var mu sync.Mutex
	dropped := map[string]int{}
	s := NewWarmSet(WarmOptions[string]{N: 2, MaxAge: time.Minute,
		Drop: func(c string) {
			mu.Lock()
			dropped[strings.Split(c, "#")[0]]++
			mu.Unlock()
		}},
		func(_ context.Context, d Destination) (string, error) {
			return fmt.Sprintf("%s#%d", d.HostPort(), dialed.Add(1)), nil
		})
	s.Start()
	a := Destination{Host: "alpha.cluster-x.us-east-1.rds.amazonaws.com", Port: 5432, DialAddr: "127.0.0.1:1"}
	b := Destination{Host: "beta.cluster-x.us-east-1.rds.amazonaws.com", Port: 5432, DialAddr: "127.0.0.1:2"}
	if _, ok := s.Take(a); ok {
		t.Fatal("a connection was ready before any login went to the instance")
	}
	waitReady := func(d Destination, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.Ready(d) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ready, want %d", d.Host, s.Ready(d), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitReady(a, 2)
	if s.Ready(b) != 0 {
		t.Fatal("connections were made ready for an instance no login went to")
	}
	for range 3 {
		c, ok := s.Take(a)
		if !ok || !strings.HasPrefix(c, a.HostPort()+"#") {
			t.Fatalf("take for alpha: %q %v", c, ok)
		}
		waitReady(a, 2)
	}
	s.Take(b)
	waitReady(b, 2)
	c, ok := s.Take(b)
	if !ok || !strings.HasPrefix(c, b.HostPort()+"#") {
		t.Fatalf("take for beta: %q %v", c, ok)
	}
	waitReady(b, 2)
	// alpha idle since before the cutoff: dropped; beta kept.
	s.mu.Lock()
	s.warms[a.HostPort()].used = time.Now().Add(-2 * WarmSetIdle)
	s.mu.Unlock()
	s.closeIdle(time.Now().Add(-WarmSetIdle))
	if s.Ready(a) != 0 || s.Ready(b) != 2 {
		t.Fatalf("after the idle cutoff: alpha %d ready, beta %d; want 0 and 2", s.Ready(a), s.Ready(b))
	}
	mu.Lock()
	if dropped[a.HostPort()] != 2 || dropped[b.HostPort()] != 0 {
		t.Errorf("dropped %v, want alpha's 2 only", dropped)
	}
	mu.Unlock()
	s.Close()
	if _, ok := s.Take(b); ok {
		t.Fatal("a take after Close got a connection")
	}
	mu.Lock()
	defer mu.Unlock()
	if dropped[b.HostPort()] != 2 {
		t.Errorf("Close dropped %d of beta's, want 2", dropped[b.HostPort()])
	}
}
