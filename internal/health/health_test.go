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
		srv := httptest.NewServer(health.Handler(health.Options{State: st, BackendCheck: check, BackendCacheTTL: -1}))
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

// startShutdown serves the shutdown listener on a loopback port.
func startShutdown(t *testing.T, quit func()) *health.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := health.ServeShutdown(ln, health.ShutdownOptions{Quit: quit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestQuitQuitQuit(t *testing.T) {
	var calls atomic.Int32
	st := health.NewState()
	st.SetServing()
	s := startShutdown(t, func() { calls.Add(1); st.SetDraining() })
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
	// Quit returned before the reply: the shutdown has begun.
	if st.Phase() != health.Draining {
		t.Errorf("phase after quit = %v, want draining", st.Phase())
	}
	// The shutdown listener serves nothing else.
	if code, _ := get(t, "http://"+s.Addr().String()+"/readiness"); code != http.StatusNotFound {
		t.Errorf("/readiness on the shutdown listener = %d, want 404", code)
	}
}

// TestAdminPortNeverServesQuit: whatever the options, the admin port (which
// may listen on the pod's address for probes) has no /quitquitquit.
func TestAdminPortNeverServesQuit(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	s, err := health.Start("127.0.0.1:0", health.Options{State: st, Metrics: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if code, _ := do(t, http.MethodPost, "http://"+s.Addr().String()+"/quitquitquit", nil); code != http.StatusNotFound {
		t.Errorf("POST /quitquitquit on the admin port = %d, want 404", code)
	}
	if st.Phase() != health.Serving {
		t.Errorf("phase %v after POSTs to the admin port, want serving", st.Phase())
	}
}

func TestQuitDisabledWithoutFunc(t *testing.T) {
	srv := httptest.NewServer(health.Handler(health.Options{State: health.NewState()}))
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics with no Metrics = %d, want 404", code)
	}
}

// TestShutdownListenerIsLocalOnly: the shutdown listener refuses a
// listener other machines can reach, with no switch to allow it, and
// serves a unix socket.
func TestShutdownListenerIsLocalOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // no IPv6 here
		}
		if s, err := health.ServeShutdown(ln, health.ShutdownOptions{Quit: func() {}}); err == nil {
			s.Close(context.Background())
			t.Errorf("ServeShutdown on %s: served, want refused", addr)
		} else if !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("ServeShutdown on %s: %v: does not say why", addr, err)
		}
		ln.Close()
	}
	sock := t.TempDir() + "/quit.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	s, err := health.ServeShutdown(ln, health.ShutdownOptions{Quit: func() { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	res, err := c.Post("http://unix/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || calls.Load() != 1 {
		t.Errorf("POST over the unix socket: %d, quit called %d times", res.StatusCode, calls.Load())
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

// TestBackendCheckShared: probes that arrive while a check runs wait for
// it instead of starting their own; its result answers probes for the
// TTL; a probe that gives up does not fail the check for the others.
func TestBackendCheckShared(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	var calls atomic.Int32
	release := make(chan struct{})
	check := func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-release:
			return errors.New("dial db:3306: connection refused")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// A TTL of seconds: the probes below all land within it however slow
	// the machine; the expiry is checked on a second handler.
	const ttl = 5 * time.Second
	srv := httptest.NewServer(health.Handler(health.Options{State: st, BackendCheck: check, BackendCacheTTL: ttl, BackendTimeout: 10 * time.Second}))
	defer srv.Close()

	// One impatient probe gives up first.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/readiness", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	cancel()
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Go(func() {
			res, err := http.Get(srv.URL + "/readiness")
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			bodies[i] = string(b)
		})
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, b := range bodies {
		if !strings.Contains(b, "backend check failed: dial db:3306") {
			t.Errorf("probe %d: %q", i, b)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d checks for 21 concurrent probes, want 1", n)
	}
	for range 10 {
		get(t, srv.URL+"/readiness")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d checks after 10 more probes within the TTL, want 1 (cached)", n)
	}

	// Past the TTL the next probe checks again.
	const short = 100 * time.Millisecond
	var shortCalls atomic.Int32
	srv2 := httptest.NewServer(health.Handler(health.Options{State: st, BackendCacheTTL: short, BackendTimeout: 10 * time.Second,
		BackendCheck: func(context.Context) error { shortCalls.Add(1); return nil }}))
	defer srv2.Close()
	get(t, srv2.URL+"/readiness")
	time.Sleep(short + 50*time.Millisecond)
	get(t, srv2.URL+"/readiness")
	if n := shortCalls.Load(); n != 2 {
		t.Fatalf("%d checks after the TTL, want 2", n)
	}
}

// TestQuitOnlyFromThisMachine: a POST that reaches the shutdown handler
// from another machine is refused all the same (the listener is local
// only; this is the second line).
func TestQuitOnlyFromThisMachine(t *testing.T) {
	st := health.NewState()
	st.SetServing()
	called := 0
	h := health.ShutdownHandler(health.ShutdownOptions{Quit: func() { called++ }})
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
