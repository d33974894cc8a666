package proxy

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestRouterReach: an engine that talks to the cluster before its login
// (MySQL's greeting) reaches the instance the router would pick; a writer
// that refuses connections is passed over once the topology names
// another; before the topology is read, the endpoint is left to the
// caller.
func TestRouterReach(t *testing.T) {
	f := &fakeCluster{}
	f.set("a", "b", "c")
	r := startRouter(t, f, nil)
	dialed := func(fail func(Destination) error) ([]string, bool, error) {
		var hosts []string
		ok, err := r.Reach(t.Context(), func(_ context.Context, d Destination) error {
			hosts = append(hosts, d.Host)
			return fail(d)
		})
		return hosts, ok, err
	}
	never := func(Destination) error { return nil }
	if hosts, ok, err := dialed(never); ok || err != nil || len(hosts) != 0 {
		t.Fatalf("before the topology is read: dialed %v, %v, %v; want nothing (the endpoint)", hosts, ok, err)
	}
	_, tk := pickOK(t, r) // the first client: the topology is read
	tk.done()
	if hosts, ok, err := dialed(never); !ok || err != nil || len(hosts) != 1 || hosts[0] != "a.abc.us-east-1.rds.amazonaws.com" {
		t.Fatalf("dialed %v, %v, %v; want the writer a", hosts, ok, err)
	}

	// a goes down and b becomes the writer: a's refusal makes the router
	// look again, and the dial moves to b.
	refused := func(d Destination) error {
		if d.Host == "a.abc.us-east-1.rds.amazonaws.com" {
			f.set("b", "a", "c")
			return syscall.ECONNREFUSED
		}
		return nil
	}
	start := time.Now()
	hosts, ok, err := dialed(refused)
	if !ok || err != nil || hosts[len(hosts)-1] != "b.abc.us-east-1.rds.amazonaws.com" {
		t.Fatalf("dialed %v, %v, %v; want a, then the new writer b", hosts, ok, err)
	}
	if d := time.Since(start); d > r.Wait {
		t.Fatalf("took %s, want less than the failover wait", d)
	}

	// The server's own answer (not the network's) is the caller's to explain.
	denied := errors.New("ERROR 1045: access denied")
	if _, ok, err := dialed(func(Destination) error { return denied }); !ok || !errors.Is(err, denied) {
		t.Fatalf("a server's refusal: %v, %v; want it returned as is", ok, err)
	}
}

// TestRouterReachReader: a reader route reaches the reader with the
// fewest sessions.
func TestRouterReachReader(t *testing.T) {
	f := &fakeCluster{}
	f.set("a", "b", "c")
	r := startRouter(t, f, func(r *Router) { r.Reader = true })
	_, tk := pickOK(t, r) // b: the readers' first
	defer tk.done()
	var got string
	if ok, err := r.Reach(t.Context(), func(_ context.Context, d Destination) error { got = d.Host; return nil }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got != "c.abc.us-east-1.rds.amazonaws.com" {
		t.Fatalf("reached %s, want c (b has a session)", got)
	}
}
