package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

// adminServer serves the real admin handler, counting /startup probes so
// that a test can tell the wait command has been polling.
func adminServer(t *testing.T, o health.Options) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var probes atomic.Int32
	h := health.Handler(o)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/startup" {
			probes.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &probes
}

// waitFor polls cond every few milliseconds for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWaitReturnsOnceServing(t *testing.T) {
	st := health.NewState()
	srv, probes := adminServer(t, health.Options{State: st})

	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(context.Background(), []string{"wait", "--admin-address", srv.Listener.Addr().String(), "--max", "30s"}, &stdout, &stderr)
	}()
	// It polls and keeps waiting while the proxy is starting...
	waitFor(t, "two /startup probes", func() bool { return probes.Load() >= 2 })
	select {
	case code := <-done:
		t.Fatalf("wait exited %d before the proxy served; stderr: %s", code, stderr.String())
	default:
	}
	// ...and returns 0 once it serves.
	st.SetServing()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("wait = %d, want 0; stderr: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after the proxy served")
	}
}

func TestWaitGivesUpAfterMax(t *testing.T) {
	srv, probes := adminServer(t, health.Options{State: health.NewState()})
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := runMain(context.Background(), []string{"wait", "--admin-address", srv.Listener.Addr().String(), "--max", "300ms"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("wait = %d, want 1", code)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("wait gave up after %v, before --max", el)
	}
	if probes.Load() < 1 {
		t.Error("wait never asked /startup")
	}
	if msg := stderr.String(); !strings.Contains(msg, "did not start within 300ms") || !strings.Contains(msg, "starting") {
		t.Errorf("stderr %q: want the limit and the last answer", msg)
	}
}

// TestWaitToleratesNoListenerYet: in a pod the app's container may run
// wait before the proxy has bound its admin port.
func TestWaitToleratesNoListenerYet(t *testing.T) {
	addr := freeAddr(t)
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), []string{"wait", "--admin-address", addr, "--max", "300ms"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "not reachable") {
		t.Errorf("wait = %d, stderr %q: want 1 and 'not reachable'", code, stderr.String())
	}
}

func TestWaitAgainstTheRealServer(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	s, err := health.Start("127.0.0.1:0", health.Options{State: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	t.Setenv("RDS_IAM_PROXY_ADMIN_ADDRESS", s.Addr().String()) // the env form, as in a pod spec
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"wait"}, &stdout, &stderr); code != 0 {
		t.Fatalf("wait = %d; stderr: %s", code, stderr.String())
	}
}

// freeAddr returns a loopback address nothing listens on (closed just
// after being bound, so a connection is refused).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestAdminURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9801":         "http://127.0.0.1:9801/startup",
		"http://127.0.0.1:9801/": "http://127.0.0.1:9801/startup",
		"https://admin.local":    "https://admin.local/startup",
	} {
		if got := adminURL(in, "/startup"); got != want {
			t.Errorf("adminURL(%q) = %q, want %q", in, got, want)
		}
	}
}
