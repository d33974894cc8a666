package health_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// do does one request and returns the status and the trimmed body.
func do(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, strings.TrimSpace(string(b))
}

func get(t *testing.T, url string) (int, string) { return do(t, http.MethodGet, url, nil) }

// TestProbesThroughTheLifecycle walks the real server through every phase
// and checks each probe's answer.
func TestProbesThroughTheLifecycle(t *testing.T) {
	st := health.NewState()
	s, err := health.Start("127.0.0.1:0", health.Options{State: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	base := "http://" + s.Addr().String()

	type want struct{ startup, liveness, readiness int }
	check := func(phase string, w want, readyBody string) {
		t.Helper()
		for path, code := range map[string]int{"/startup": w.startup, "/liveness": w.liveness, "/readiness": w.readiness} {
			if got, body := get(t, base+path); got != code {
				t.Errorf("%s: %s = %d (%q), want %d", phase, path, got, body, code)
			}
		}
		if _, body := get(t, base+"/readiness"); body != readyBody {
			t.Errorf("%s: /readiness body %q, want %q", phase, body, readyBody)
		}
	}
	check("starting", want{503, 200, 503}, "starting")
	st.SetServing()
	check("serving", want{200, 200, 200}, "ok")
	st.SetDraining()
	check("draining", want{200, 200, 503}, "draining")
	st.SetServing() // too late: phases only move forward
	check("serving after draining", want{200, 200, 503}, "draining")
	st.SetStopped()
	check("stopped", want{200, 200, 503}, "stopped")
}

// TestDrainingBeforeServingNeverStarted: a proxy stopped during startup
// must not let `wait` go ahead.
func TestDrainingBeforeServingNeverStarted(t *testing.T) {
	st := health.NewState()
	st.SetDraining()
	st.SetServing()
	srv := httptest.NewServer(health.Handler(health.Options{State: st}))
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/startup"); code != 503 {
		t.Errorf("/startup = %d, want 503", code)
	}
	if st.Phase() != health.Draining {
		t.Errorf("phase = %v, want draining", st.Phase())
	}
}

func TestCapacityLimitFlipsReadiness(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	var open atomic.Int64
	limit := 3
	srv := httptest.NewServer(health.Handler(health.Options{State: st, Capacity: func() (int, int) { return int(open.Load()), limit }}))
	defer srv.Close()

	for n, want := range map[int64]int{0: 200, 2: 200, 3: 503, 4: 503} {
		open.Store(n)
		code, body := get(t, srv.URL+"/readiness")
		if code != want {
			t.Errorf("open %d/%d: /readiness = %d (%q), want %d", n, limit, code, body, want)
		}
		if code == 503 && !strings.Contains(body, "connection limit reached") {
			t.Errorf("open %d: body %q does not say why", n, body)
		}
	}
	open.Store(3)
	if _, body := get(t, srv.URL+"/readiness"); body != "connection limit reached (3/3)" {
		t.Errorf("body = %q", body)
	}
	// Limit 0 is no limit.
	limit = 0
	if code, _ := get(t, srv.URL+"/readiness"); code != 200 {
		t.Errorf("no limit: /readiness = %d, want 200", code)
	}
}

func TestBackendCheckIsOptIn(t *testing.T) {
	st := health.NewState()
	st.SetServing()

	t.Run("off", func(t *testing.T) {
		srv := httptest.NewServer(health.Handler(health.Options{State: st}))
		defer srv.Close()
		if code, _ := get(t, srv.URL+"/readiness"); code != 200 {
			t.Errorf("/readiness = %d, want 200 with no backend check", code)
		}
	})

	t.Run("on", func(t *testing.T) {
		var fail atomic.Bool
		var calls atomic.Int32
		var hadDeadline atomic.Bool
		check := func(ctx context.Context) error {
			calls.Add(1)
			_, ok := ctx.Deadline()
			hadDeadline.Store(ok)
			if fail.Load() {
				return errors.New("dial orders.abc.us-east-1.rds.amazonaws.com:5432: connection refused")
			}
			return nil
		}
		srv := httptest.NewServer(health.Handler(health.Options{State: st, BackendCheck: check}))
		defer srv.Close()
		if code, _ := get(t, srv.URL+"/readiness"); code != 200 {
			t.Errorf("backend ok: /readiness = %d, want 200", code)
		}
		fail.Store(true)
		code, body := get(t, srv.URL+"/readiness")
		if code != 503 || !strings.HasPrefix(body, "backend check failed: dial orders") {
			t.Errorf("backend down: /readiness = %d %q, want 503 backend check failed", code, body)
		}
		if calls.Load() != 2 || !hadDeadline.Load() {
			t.Errorf("calls %d, deadline %v: want 2 calls with a deadline", calls.Load(), hadDeadline.Load())
		}
		// /liveness never looks at the backend.
		if code, _ := get(t, srv.URL+"/liveness"); code != 200 {
			t.Errorf("/liveness = %d with the backend down, want 200", code)
		}
	})

	t.Run("times out", func(t *testing.T) {
		check := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		srv := httptest.NewServer(health.Handler(health.Options{State: st, BackendCheck: check, BackendTimeout: 50 * time.Millisecond}))
		defer srv.Close()
		code, body := get(t, srv.URL+"/readiness")
		if code != 503 || !strings.Contains(body, "deadline exceeded") {
			t.Errorf("hung backend: /readiness = %d %q, want 503 deadline exceeded", code, body)
		}
	})

	t.Run("not run while draining", func(t *testing.T) {
		d := health.NewState()
		d.SetServing()
		d.SetDraining()
		var calls atomic.Int32
		srv := httptest.NewServer(health.Handler(health.Options{State: d, BackendCheck: func(context.Context) error { calls.Add(1); return nil }}))
		defer srv.Close()
		if code, _ := get(t, srv.URL+"/readiness"); code != 503 || calls.Load() != 0 {
			t.Errorf("draining: /readiness = %d after %d backend checks, want 503 after none", code, calls.Load())
		}
	})
}

func TestQuitQuitQuit(t *testing.T) {
	var calls atomic.Int32
	st := health.NewState()
	st.SetServing()
	s, err := health.Start("127.0.0.1:0", health.Options{State: st, Quit: func() { calls.Add(1); st.SetDraining() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	url := "http://" + s.Addr().String() + "/quitquitquit"

	if code, _ := get(t, url); code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d, want 405", code)
	}
	if code, _ := do(t, http.MethodPost, url, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("POST from a browser page = %d, want 403", code)
	}
	if calls.Load() != 0 {
		t.Fatalf("quit called %d times before any accepted POST", calls.Load())
	}

	// Concurrent POSTs: quit runs once.
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		// Not do(): no t.Fatal off the test's goroutine.
		wg.Go(func() {
			res, err := http.Post(url, "", nil)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("POST %d = %d, want 200", i, c)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("quit called %d times, want 1", n)
	}
	// Quit returned before the reply: readiness already fails.
	if code, _ := get(t, "http://"+s.Addr().String()+"/readiness"); code != 503 {
		t.Errorf("/readiness after quit = %d, want 503", code)
	}
}

func TestQuitDisabledWithoutFunc(t *testing.T) {
	srv := httptest.NewServer(health.Handler(health.Options{State: health.NewState()}))
	defer srv.Close()
	if code, _ := do(t, http.MethodPost, srv.URL+"/quitquitquit", nil); code != http.StatusNotFound {
		t.Errorf("POST with no Quit = %d, want 404", code)
	}
	if code, _ := get(t, srv.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics with no Metrics = %d, want 404", code)
	}
}

func TestMetricsServedOnAdminPort(t *testing.T) {
	m := metrics.New()
	m.Upstream("orders", "postgres").Accepted()
	s, err := health.Start("127.0.0.1:0", health.Options{State: health.NewState(), Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	code, body := get(t, "http://"+s.Addr().String()+"/metrics")
	if code != 200 || !strings.Contains(body, `rds_iam_proxy_connections_total{engine="postgres",upstream="orders"} 1`) {
		t.Errorf("/metrics = %d, body lacks the connection counter:\n%.2000s", code, body)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0"} {
		if s, err := health.Start(addr, health.Options{State: health.NewState()}); err == nil {
			s.Close(context.Background())
			t.Errorf("Start(%q) succeeded, want refused as non-loopback", addr)
		} else if !strings.Contains(err.Error(), "loopback") && !strings.Contains(err.Error(), "every interface") {
			t.Errorf("Start(%q): %v: does not say why", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		s, err := health.Start(addr, health.Options{State: health.NewState()})
		if err != nil {
			t.Errorf("Start(%q): %v", addr, err)
			continue
		}
		s.Close(context.Background())
	}
	s, err := health.Start("0.0.0.0:0", health.Options{State: health.NewState(), AllowNonLoopback: true})
	if err != nil {
		t.Fatalf("Start(0.0.0.0:0) allowed: %v", err)
	}
	s.Close(context.Background())
}

func TestCloseEndsServing(t *testing.T) {
	s, err := health.Start("127.0.0.1:0", health.Options{State: health.NewState()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.Done():
		if err != nil {
			t.Errorf("Done: %v, want nil after Close", err)
		}
	case <-ctx.Done():
		t.Fatal("serve loop did not end after Close")
	}
	if _, err := http.Get("http://" + s.Addr().String() + "/liveness"); err == nil {
		t.Error("admin port still answers after Close")
	}
}

func TestDialCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := health.DialCheck(ln.Addr().String())(ctx); err != nil {
		t.Errorf("reachable upstream: %v", err)
	}
	err = health.DialCheck(ln.Addr().String(), down)(ctx)
	if err == nil || !strings.Contains(err.Error(), "dial "+down) {
		t.Errorf("one upstream down: %v, want an error naming %s", err, down)
	}

	// Wired into readiness.
	st := health.NewState()
	st.SetServing()
	srv := httptest.NewServer(health.Handler(health.Options{State: st, BackendCheck: health.DialCheck(down)}))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/readiness"); code != 503 || !strings.Contains(body, "backend check failed: dial "+down) {
		t.Errorf("/readiness = %d %q", code, body)
	}
}

// TestQuitOnlyFromThisMachine: with the admin port on the pod's address
// (for the kubelet's probes), another pod's POST /quitquitquit is refused
// and the proxy keeps running.
func TestQuitOnlyFromThisMachine(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	called := 0
	h := health.Handler(health.Options{State: st, Quit: func() { called++ }})
	for _, remote := range []string{"10.1.2.3:40000", "[fd00::7]:40000", "192.0.2.1:1234"} {
		req := httptest.NewRequest(http.MethodPost, "/quitquitquit", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "only from this machine") {
			t.Errorf("POST from %s: %d %q; want 403", remote, rec.Code, rec.Body.String())
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/quitquitquit", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || called != 1 {
		t.Fatalf("POST from loopback: %d, quit called %d times", rec.Code, called)
	}
}
