package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// fakeCluster answers the router's probes from a topology the test sets:
// each instance says who it is, whether it is read-only, and the rows.
// It stands for the real instances only where the router's own logic is
// under test; the integration suite runs it against PostgreSQL.
type fakeCluster struct {
	mu       sync.Mutex
	writer   string
	readers  []string
	readOnly map[string]bool
	tokens   []string // the hosts tokens were signed for
}

const testCluster = "db.cluster-abc.us-east-1.rds.amazonaws.com"

func (f *fakeCluster) set(writer string, readers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writer, f.readers = writer, readers
}

func (f *fakeCluster) Probe(_ context.Context, d Destination, _, _, _ string) (topology.Probe, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	self, _, _ := strings.Cut(d.Host, ".")
	if d.Host == testCluster {
		self = f.writer
	}
	rows := []topology.Row{{ServerID: f.writer, Writer: true, Updated: time.Now()}}
	for _, r := range f.readers {
		rows = append(rows, topology.Row{ServerID: r, Updated: time.Now()})
	}
	return topology.Probe{Self: self, ReadOnly: f.readOnly[self] || self != f.writer, Rows: rows}, nil
}

func (f *fakeCluster) Token(_ context.Context, host string, _ int, _, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, host)
	return "token-for-" + host, nil
}

func (f *fakeCluster) Identity(context.Context, string) (authtoken.Identity, error) {
	return authtoken.Identity{}, nil
}

func startRouter(t *testing.T, f *fakeCluster, mod func(*Router)) *Router {
	t.Helper()
	r := &Router{Cluster: testCluster, Port: 5432, Dial: "127.0.0.1:1", Tokens: f, Region: "us-east-1", Prober: f,
		Refresh: time.Hour, Fast: 10 * time.Millisecond, Wait: 2 * time.Second,
		DialAddr: map[string]string{"a.abc.us-east-1.rds.amazonaws.com": "127.0.0.1:7001"}}
	if mod != nil {
		mod(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func pickOK(t *testing.T, r *Router) (Destination, *routeTicket) {
	t.Helper()
	d, tk, err := r.pick(t.Context(), Who{User: "app", Database: "appdb"}, time.Now().Add(r.Wait))
	if err != nil {
		t.Fatal(err)
	}
	return d, tk
}

func TestRouterPicksTheWriterByItsInstanceName(t *testing.T) {
	f := &fakeCluster{}
	f.set("a", "b", "c")
	r := startRouter(t, f, nil)
	d, tk := pickOK(t, r)
	defer tk.done()
	if d.Host != "a.abc.us-east-1.rds.amazonaws.com" || d.Port != 5432 || d.DialAddr != "127.0.0.1:7001" {
		t.Fatalf("picked %+v, want the writer a's instance endpoint at its dial address", d)
	}
	// b has no dial address: its own name.
	f.set("b", "a", "c")
	r.mon.Suspect()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, tk := pickOK(t, r)
		tk.done()
		if d.Host == "b.abc.us-east-1.rds.amazonaws.com" {
			if d.DialAddr != "b.abc.us-east-1.rds.amazonaws.com:5432" {
				t.Fatalf("dial address %q, want the instance name", d.DialAddr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still picking %s 5 s after the writer moved to b", d.Host)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRouterReadersLeastConnectionsThenWriter(t *testing.T) {
	f := &fakeCluster{}
	f.set("a", "b", "c")
	r := startRouter(t, f, func(r *Router) { r.Reader = true })
	count := map[string]int{}
	var held []*routeTicket
	for range 10 {
		d, tk := pickOK(t, r)
		held = append(held, tk)
		count[strings.Split(d.Host, ".")[0]]++
	}
	if count["b"] != 5 || count["c"] != 5 {
		t.Fatalf("10 reader picks went %v, want b 5 and c 5", count)
	}
	// Released places are counted down: with two of b's released, b is
	// the emptier and gets the next two.
	for _, tk := range held {
		if strings.HasPrefix(tk.dest.Host, "b.") && count["b"] > 3 {
			tk.done()
			tk.done() // harmless twice
			count["b"]--
		}
	}
	for range 2 {
		d, tk := pickOK(t, r)
		held = append(held, tk)
		if !strings.HasPrefix(d.Host, "b.") {
			t.Fatalf("picked %s with b 3 and c 5 sessions open, want b", d.Host)
		}
	}
	for _, tk := range held {
		tk.done()
	}
	// No reader: the writer.
	f.set("a")
	r.mon.Suspect()
	waitFor := time.Now().Add(5 * time.Second)
	for {
		d, tk := pickOK(t, r)
		tk.done()
		if strings.HasPrefix(d.Host, "a.") {
			if tk.writer {
				t.Fatal("a reader session on the writer (no readers) would be cut at a failover")
			}
			break
		}
		if time.Now().After(waitFor) {
			t.Fatal("reader picks did not fall back to the writer")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRouterCutsSessionsOnADemotedWriterOnly(t *testing.T) {
	f := &fakeCluster{}
	f.set("a", "b")
	r := startRouter(t, f, nil)
	_, wt := pickOK(t, r)
	defer wt.done()
	wc, wpeer := netpair.TCP(t)
	defer wpeer.Close()
	writerSession := wt.follow(wc)
	defer writerSession.Close()
	// A reader ticket on b (by hand: this router routes to the writer).
	rc, rpeer := netpair.TCP(t)
	defer rpeer.Close()
	rt := &routeTicket{r: r, dest: Destination{Host: "b.abc.us-east-1.rds.amazonaws.com"}}
	r.mu.Lock()
	r.counts[rt.dest.Host]++
	r.mu.Unlock()
	readerSession := rt.follow(rc)
	defer rt.done()
	defer readerSession.Close()

	// A writer merely unconfirmed (not writable, no other writer) cuts
	// nothing.
	f.mu.Lock()
	f.readOnly = map[string]bool{"a": true} // a is no longer writable: no writer confirmed
	f.mu.Unlock()
	r.mon.Suspect()
	time.Sleep(100 * time.Millisecond)
	if writerSession.(*routedConn).demoted.Load() {
		t.Fatal("a writer that is merely unconfirmed had its sessions cut")
	}
	// b confirmed as writer: a's writer sessions end with ErrDemoted.
	f.mu.Lock()
	f.readOnly = nil
	f.mu.Unlock()
	f.set("b", "a")
	done := make(chan error, 1)
	go func() {
		_, err := writerSession.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDemoted) {
			t.Fatalf("the writer session's read ended with %v, want ErrDemoted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session on the demoted writer was not cut within 5 s")
	}
	if readerSession.(*routedConn).demoted.Load() {
		t.Fatal("a reader's session was cut")
	}
	if f := DemotedFailure(); f.Reason != failure.Upstream || !strings.Contains(f.Cause, "no longer the writer") || f.Fix == "" {
		t.Fatalf("DemotedFailure = %+v", f)
	}
}

func TestRouterHoldsThenExplainsWhenNoWriter(t *testing.T) {
	f := &fakeCluster{readOnly: map[string]bool{"a": true}}
	f.set("a", "b")
	r := startRouter(t, f, func(r *Router) { r.Wait = 300 * time.Millisecond })
	start := time.Now()
	_, _, err := r.pick(t.Context(), Who{User: "app"}, time.Now().Add(r.Wait))
	held := time.Since(start)
	fl, ok := failure.As(err)
	if !ok || !strings.Contains(fl.Cause, "no writer of the Aurora cluster") || !strings.Contains(fl.Cause, "writable") {
		t.Fatalf("pick with no writable writer: %v", err)
	}
	if held < 250*time.Millisecond || held > 5*time.Second {
		t.Fatalf("held %s, want about the failover wait (300 ms)", held)
	}
	// The writer becomes writable within the wait: the login goes through.
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.mu.Lock()
		f.readOnly = nil
		f.mu.Unlock()
	}()
	r.Wait = 3 * time.Second
	if _, tk, err := r.pick(t.Context(), Who{User: "app"}, time.Now().Add(r.Wait)); err != nil {
		t.Fatalf("a writer confirmed during the hold: %v", err)
	} else {
		tk.done()
	}
}

func TestRouterExplainsAFailedLoginByTheInstance(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	var d net.Dialer
	c, dialErr := d.DialContext(t.Context(), "tcp", closed)
	if dialErr == nil {
		c.Close()
		t.Fatalf("a dial to the closed port %s succeeded", closed)
	}
	dest := Destination{Host: "b.abc.us-east-1.rds.amazonaws.com", Port: 5432, DialAddr: closed}
	err = explainAt(Target{Host: testCluster, Port: 5432, DialAddr: "127.0.0.1:2"}, dest, "app", dialErr)
	f, ok := failure.As(err)
	if !ok || !strings.Contains(f.Cause, dest.Host) || !strings.Contains(f.Cause, dest.DialAddr) || strings.Contains(f.Cause, testCluster) {
		t.Fatalf("explained as %v; want the instance %s at %s named, not the cluster", err, dest.Host, dest.DialAddr)
	}
	// A server's own answer is left to the engine.
	plain := errors.New("FATAL: PAM authentication failed")
	if got := explainAt(Target{}, dest, "app", plain); got != plain {
		t.Fatalf("a server error was rewritten: %v", got)
	}
}
