package serve

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"

	"github.com/jackc/pgx/v5/pgconn"
)

// running is Run in the background.
type running struct {
	p      *Process
	status chan int
	stop   context.CancelFunc // a signal
	stderr *syncbuf.Buffer
}

// run starts Run with s and waits until it serves.
func run(t *testing.T, ctx context.Context, args ...string) *running {
	t.Helper()
	s := settings(t, args...)
	ctx, stop := context.WithCancel(ctx)
	r := &running{status: make(chan int, 1), stop: stop, stderr: &syncbuf.Buffer{}}
	started := make(chan *Process, 1)
	go func() {
		r.status <- Run(ctx, s, Options{Stderr: r.stderr, AWSLoadOptions: world.Signer(), Started: func(p *Process) { started <- p }})
	}()
	select {
	case r.p = <-started:
	case code := <-r.status:
		t.Fatalf("Run ended before serving: exit %d\n%s", code, r.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not start serving")
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-r.status:
		case <-time.After(30 * time.Second):
			t.Error("Run did not end after its context")
		}
	})
	return r
}

// exit waits for Run's status.
func (r *running) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.status:
		r.status <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end")
		return -1
	}
}

// session opens a client session through the first upstream.
func (r *running) session(t *testing.T, ctx context.Context) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(ctx, "host=127.0.0.1 port="+r.p.Upstreams[0].Port()+" user="+iamUser+" dbname=postgres sslmode=disable connect_timeout=20")
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	if err := conn.Exec(ctx, "SELECT 1").Close(); err != nil {
		t.Fatalf("query through the proxy: %v", err)
	}
	return conn
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRunServesAndQuits: the admin port answers for a serving process,
// its metrics count the session, and POST /quitquitquit on the shutdown
// socket drains it with the configured exit status.
func TestRunServesAndQuits(t *testing.T) {
	dir, err := os.MkdirTemp("", "serve-") // short: a socket path has 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	quit := filepath.Join(dir, "quit.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := run(t, ctx, "--admin-address", "127.0.0.1:0", "--shutdown-address", "unix:"+quit, "--exit-code", "7")
	admin := "http://" + r.p.Admin.Addr().String()
	for _, path := range []string{"/startup", "/liveness", "/readiness"} {
		if code, body := get(t, admin+path); code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	r.session(t, ctx).Close(ctx)
	_, metrics := get(t, admin+"/metrics")
	name := r.p.Upstreams[0].Name()
	if want := `rds_iam_proxy_connections_total{engine="postgres",upstream="` + name + `"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if want := `rds_iam_proxy_tokens_built_total{upstream="` + name + `"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", quit)
		}}}
	resp, err := c.Post("http://proxy/quitquitquit", "text/plain", nil)
	if err != nil {
		t.Fatalf("POST /quitquitquit: %v", err)
	}
	resp.Body.Close()
	if code := r.exit(t); code != 7 {
		t.Errorf("exit %d after a clean drain, want --exit-code 7\n%s", code, r.stderr.String())
	}
	if _, err := os.Stat(quit); err == nil {
		t.Error("the shutdown socket outlived the process")
	}
}

// TestRunDrain: on a signal readiness fails at once; an open session may
// finish within --max-shutdown-delay (clean exit), and one still open
// after it is cut (exit 3).
func TestRunDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("finishes", func(t *testing.T) {
		r := run(t, ctx, "--admin-address", "127.0.0.1:0", "--max-shutdown-delay", "30s")
		conn := r.session(t, ctx)
		r.stop()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := get(t, "http://"+r.p.Admin.Addr().String()+"/readiness")
			if code == http.StatusServiceUnavailable && strings.Contains(body, "draining") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readiness during the drain: %d %s", code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := conn.Exec(ctx, "SELECT 1").Close(); err != nil {
			t.Errorf("the open session broke during the drain: %v", err)
		}
		conn.Close(ctx)
		if code := r.exit(t); code != 0 {
			t.Errorf("exit %d after the last session ended, want 0\n%s", code, r.stderr.String())
		}
	})
	t.Run("cut", func(t *testing.T) {
		r := run(t, ctx, "--max-shutdown-delay", "200ms")
		conn := r.session(t, ctx)
		defer conn.Close(ctx)
		r.stop()
		if code := r.exit(t); code != ExitCut {
			t.Errorf("exit %d with a session open past max_shutdown_delay, want %d\n%s", code, ExitCut, r.stderr.String())
		}
		if !strings.Contains(r.stderr.String(), "connections still open after 200ms were closed") {
			t.Errorf("stderr: %s", r.stderr.String())
		}
		if err := conn.Exec(ctx, "SELECT 1").Close(); err == nil {
			t.Error("the cut session still answers")
		}
	})
}

// TestRunReadinessChecksBackend: with readiness_check_backend, an
// upstream that cannot be reached makes the process unready, naming it.
func TestRunReadinessChecksBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := run(t, ctx, "--admin-address", "127.0.0.1:0", "--readiness-check-backend", "--dial-address", closed)
	code, body := get(t, "http://"+r.p.Admin.Addr().String()+"/readiness")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, r.p.Upstreams[0].Name()) || !strings.Contains(body, "backend check failed") {
		t.Errorf("readiness with the upstream down: %d %s", code, body)
	}
}

// TestRunStartupFailures: an upstream that cannot start, or an admin
// address that is taken, ends Run with status 1 and a message naming the
// upstream (and where it was configured) or the setting.
func TestRunStartupFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr syncbuf.Buffer
	s := settings(t, "--ca-bundle", "/nonexistent/bundle.pem")
	if code := Run(ctx, s, Options{Stderr: &stderr, AWSLoadOptions: world.Signer()}); code != ExitFailed {
		t.Errorf("exit %d with a missing bundle, want %d", code, ExitFailed)
	}
	if want := "rds-iam-proxy: " + s.Upstreams[0].Name + " (--endpoint): "; !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "/nonexistent/bundle.pem") {
		t.Errorf("stderr %q, want %q and the file", stderr.String(), want)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var stderr2 syncbuf.Buffer
	s = settings(t, "--admin-address", taken.Addr().String())
	if code := Run(ctx, s, Options{Stderr: &stderr2, AWSLoadOptions: world.Signer()}); code != ExitFailed || !strings.Contains(stderr2.String(), "admin_address") {
		t.Errorf("admin address taken: exit %d, stderr %q", code, stderr2.String())
	}
}
