package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// sidecar is the built binary running with a config file, as in a pod.
type sidecar struct {
	cmd    *exec.Cmd
	logs   *syncbuf.Buffer
	admin  string        // host:port of the admin port
	exited chan struct{} // closed when the process has exited
	code   int           // its exit status, once exited
}

// wait waits for the process to exit and returns its status and how long
// it took from the call.
func (s *sidecar) wait(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-s.exited:
		return s.code, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("the proxy did not exit within %s\n%s", limit, s.logs)
		return 0, 0
	}
}

func (s *sidecar) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// startSidecar writes config (YAML) to a file and runs the binary with
// --config and extra flags; it waits until /startup says it serves.
func startSidecar(t *testing.T, config string, extra ...string) *sidecar {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rds-iam-proxy.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{logs: &syncbuf.Buffer{}, admin: "127.0.0.1:" + freePort(t), exited: make(chan struct{})}
	args := append([]string{"--config", path, "--admin-address", s.admin, "--log-level", "debug"}, extra...)
	for i, a := range extra {
		if a == "--admin-address" && i+1 < len(extra) {
			// Probed on loopback even when it listens on every interface.
			_, port, _ := net.SplitHostPort(extra[i+1])
			s.admin = "127.0.0.1:" + port
		}
	}
	s.cmd = exec.Command(proxyBinary(t), args...)
	s.cmd.Stderr = io.MultiWriter(s.logs, w.logs)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	waitFor(t, 20*time.Second, func() bool {
		if !s.running() {
			t.Fatalf("the proxy exited (%d):\n%s", s.code, s.logs)
		}
		code, _ := s.get(t, "/startup")
		return code == 200
	})
	return s
}

// get fetches an admin path: status code and body (0 when unreachable).
func (s *sidecar) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one sample from /metrics: the line that starts with name
// (labels included, as Prometheus prints them).
func (s *sidecar) metric(t *testing.T, series string) float64 {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, v)
			}
			return f
		}
	}
	return -1
}

// upstreamsYAML is a config serving the world's Postgres and MySQL fronts.
func upstreamsYAML(extra string, upstreams ...string) string {
	return fmt.Sprintf("ca_bundle: %s\n%s\nupstreams:\n%s", w.caFile, extra, strings.Join(upstreams, ""))
}

func pgUpstream(name, listen string) string {
	return fmt.Sprintf("  - name: %s\n    engine: postgres\n    endpoint: %s:%d\n    dial_address: %s\n    listen: %s\n",
		name, w.front.Endpoint(), w.front.Port(), w.front.Addr(), listen)
}

func myUpstream(name, listen string) string {
	return fmt.Sprintf("  - name: %s\n    engine: mysql\n    endpoint: %s:%d\n    dial_address: %s\n    listen: %s\n",
		name, w.my.Endpoint(), w.my.Port(), w.my.Addr(), listen)
}

// TestSidecarTwoEnginesFromOneFile: one process from one YAML file serves
// Postgres and MySQL, each on TCP and on a unix socket, to real clients at
// the same time.
func TestSidecarTwoEnginesFromOneFile(t *testing.T) {
	w.enter(t)
	dir, err := os.MkdirTemp("", "riap-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pgPort, myPort := freePort(t), freePort(t)
	mySock := filepath.Join(dir, "mysql.sock")
	cfg := upstreamsYAML("",
		pgUpstream("pg-tcp", "127.0.0.1:"+pgPort),
		pgUpstream("pg-sock", "unix:"+dir),
		myUpstream("my-tcp", "127.0.0.1:"+myPort),
		myUpstream("my-sock", "unix:"+mySock),
	)
	s := startSidecar(t, cfg)

	for _, sock := range []string{filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", w.front.Port())), mySock} {
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %s: %v, mode %v; want 0600", sock, err, fi.Mode())
		}
	}

	var wg sync.WaitGroup
	errs := make(chan string, 8)
	run := func(what string, f func() (string, error), want string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f()
			if err != nil || strings.TrimSpace(got) != want {
				errs <- fmt.Sprintf("%s: %q, %v (want %q)", what, got, err, want)
			}
		}()
	}
	for range 2 {
		run("psql over the unix socket", func() (string, error) {
			out, stderr, err := psql(t, fmt.Sprintf("host=%s port=%d user=%s dbname=%s", dir, w.front.Port(), iamUser, appDB), "-c", "SELECT current_user")
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr)
			}
			return out, err
		}, iamUser)
		run("pgconn over TCP", func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
			if err != nil {
				return "", err
			}
			defer c.Close(ctx)
			res := c.ExecParams(ctx, "SELECT current_user", nil, nil, nil, nil).Read()
			if res.Err != nil {
				return "", res.Err
			}
			return string(res.Rows[0][0]), nil
		}, iamUser)
		run("mysql over the unix socket", func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, w.My.BinPath("mariadb"), "--no-defaults", "--socket="+mySock, "-u", iamUser,
				"--skip-ssl", "--batch", "--skip-column-names", appDB, "-e", "SELECT CURRENT_USER()").CombinedOutput()
			return string(out), err
		}, iamUser+"@%")
		run("go-sql-driver over TCP", func() (string, error) {
			var cur string
			err := mysqlDB(t, myPort, iamUser).QueryRow("SELECT CURRENT_USER()").Scan(&cur)
			return cur, err
		}, iamUser+"@%")
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Each upstream is labelled by its name in the metrics.
	for _, name := range []string{"pg-tcp", "pg-sock", "my-tcp", "my-sock"} {
		engine := "postgres"
		if strings.HasPrefix(name, "my") {
			engine = "mysql"
		}
		if got := s.metric(t, fmt.Sprintf(`rds_iam_proxy_connections_total{engine="%s",upstream="%s"}`, engine, name)); got != 2 {
			t.Errorf("connections_total for %s: %v, want 2", name, got)
		}
	}
}

// TestSidecarHealthMetricsAndLimit: the admin port through the lifecycle;
// metrics move as connections open, fail and close; the shared
// connection limit fails readiness and refuses the next client with its
// protocol's error until a slot frees.
func TestSidecarHealthMetricsAndLimit(t *testing.T) {
	w.enter(t)
	pgPort, myPort := freePort(t), freePort(t)
	s := startSidecar(t, upstreamsYAML("max_connections: 1", pgUpstream("pg", "127.0.0.1:"+pgPort), myUpstream("my", "127.0.0.1:"+myPort)))
	for _, p := range []string{"/startup", "/liveness", "/readiness"} {
		if code, body := s.get(t, p); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	if out, err := exec.Command(proxyBinary(t), "wait", "--admin-address", s.admin, "--max", "5s").CombinedOutput(); err != nil {
		t.Fatalf("rds-iam-proxy wait: %v %s", err, out)
	}
	open := `rds_iam_proxy_connections_open{engine="postgres",upstream="pg"}`
	total := `rds_iam_proxy_connections_total{engine="postgres",upstream="pg"}`
	if s.metric(t, open) != 0 || s.metric(t, total) != 0 {
		t.Fatalf("before any client: open %v total %v", s.metric(t, open), s.metric(t, total))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	if s.metric(t, open) != 1 || s.metric(t, total) != 1 {
		t.Fatalf("one client: open %v total %v", s.metric(t, open), s.metric(t, total))
	}
	if got := s.metric(t, `rds_iam_proxy_tokens_built_total{upstream="pg"}`); got < 1 {
		t.Errorf("tokens_built_total %v", got)
	}
	if got := s.metric(t, `rds_iam_proxy_sessions_parked{upstream="pg"}`); got != -1 {
		t.Errorf("sessions_parked %v without session_reuse, want no series", got)
	}
	if got := s.metric(t, `rds_iam_proxy_ca_bundle_certificates{upstream="pg"}`); got != 1 {
		t.Errorf("ca_bundle_certificates %v, want 1 (the emulator's CA)", got)
	}
	// At the shared limit: not ready, and the next client (of the other
	// engine) is told why in its protocol.
	if code, body := s.get(t, "/readiness"); code != 503 || !strings.Contains(body, "connection limit reached (1/1)") {
		t.Fatalf("readiness at the limit: %d %q", code, body)
	}
	_, stderr, err := mysqlCLI(t, myPort, iamUser, "-e", "SELECT 1")
	if err == nil || !strings.Contains(stderr, "ERROR 1040") || !strings.Contains(stderr, "the proxy's limit for all upstreams of 1 is reached") {
		t.Fatalf("mysql over the shared limit: %v %s", err, stderr)
	}
	if got := s.metric(t, `rds_iam_proxy_connections_failed_total{engine="mysql",reason="limit",upstream="my"}`); got != 1 {
		t.Errorf("failed{reason=limit} for my: %v", got)
	}
	c.Exec(ctx, "SELECT repeat('x', 100000)").ReadAll()
	if got := s.metric(t, `rds_iam_proxy_bytes_total{direction="from_upstream",engine="postgres",upstream="pg"}`); got < 100000 {
		t.Errorf("bytes from upstream %v, want over 100000", got)
	}
	c.Close(ctx)
	waitFor(t, 5*time.Second, func() bool { return s.metric(t, open) == 0 })
	if code, _ := s.get(t, "/readiness"); code != 200 {
		t.Fatalf("readiness after the slot freed: %d", code)
	}
	if out, stderr, err := mysqlCLI(t, myPort, iamUser, "-e", "SELECT 1"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("mysql after the slot freed: %v %s", err, stderr)
	}
	// A refused login counts by reason (once the mysql session's slot is
	// free again).
	waitFor(t, 5*time.Second, func() bool { return s.metric(t, `rds_iam_proxy_connections_open{engine="mysql",upstream="my"}`) == 0 })
	if code := connectCode(t, pgPort, plainUser); code != "28P01" {
		t.Fatalf("plain_user: %s", code)
	}
	if got := s.metric(t, `rds_iam_proxy_connections_failed_total{engine="postgres",reason="upstream_auth",upstream="pg"}`); got != 1 {
		t.Errorf("failed{reason=upstream_auth}: %v", got)
	}
}

// TestSidecarDrain: on SIGTERM readiness fails at once, new clients are
// still served for --min-shutdown-delay, then refused; a transaction in
// flight commits; the process exits with --exit-code once it is done.
func TestSidecarDrain(t *testing.T) {
	w.enter(t)
	pgPort := freePort(t)
	s := startSidecar(t, upstreamsYAML("exit_code: 0\nmin_shutdown_delay: 4s\nmax_shutdown_delay: 30s", pgUpstream("pg", "127.0.0.1:"+pgPort)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN; INSERT INTO items (name) VALUES ('drained'); ").ReadAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.pg.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name = 'drained'") })

	// Timed from before the signal for the floor (the drain cannot start
	// earlier) and from after it for the ceiling.
	before := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	signalled := time.Now()
	waitFor(t, 2*time.Second, func() bool { code, _ := s.get(t, "/readiness"); return code == 503 })
	if code, body := s.get(t, "/readiness"); !strings.Contains(body, "draining") {
		t.Fatalf("readiness while draining: %d %q", code, body)
	}
	// Within the minimum delay new clients are still served.
	if code := connectCode(t, pgPort, iamUser); code != "" {
		t.Fatalf("a client during --min-shutdown-delay: %s", code)
	}
	if took := time.Since(signalled); took > 4*time.Second {
		t.Fatalf("the check ran %v after the signal, past the 4s delay: the machine is too slow for this test", took)
	}
	waitFor(t, 10*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+pgPort, time.Second)
		if err == nil {
			conn.Close()
			return false
		}
		return true
	})
	if took := time.Since(before); took < 4*time.Second {
		t.Fatalf("listener closed after %v, before --min-shutdown-delay", took)
	}
	if !s.running() {
		t.Fatal("the proxy exited with a transaction open")
	}
	if _, err := c.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatalf("COMMIT during the drain: %v", err)
	}
	c.Close(ctx)
	if code, _ := s.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after a clean drain, want 0\n%s", code, s.logs)
	}
	admin, err := pgconn.Connect(ctx, w.pg.ConnString("postgres", appDB))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	res := admin.ExecParams(ctx, "SELECT count(*) FROM items WHERE name = 'drained'", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "1" {
		t.Fatalf("the drained transaction's row: %v %v", res.Rows, res.Err)
	}
}

// TestSidecarQuitQuitQuit: `rds-iam-proxy shutdown` (POST /quitquitquit)
// drains like a signal; an idle session still open at
// --max-shutdown-delay is cut and the exit status (3) says so.
func TestSidecarQuitQuitQuit(t *testing.T) {
	w.enter(t)
	pgPort, quitAddr := freePort(t), "127.0.0.1:"+freePort(t)
	s := startSidecar(t, upstreamsYAML("max_shutdown_delay: 1s\nshutdown_address: "+quitAddr, pgUpstream("pg", "127.0.0.1:"+pgPort)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if out, err := exec.Command(proxyBinary(t), "shutdown", "--shutdown-address", quitAddr).CombinedOutput(); err != nil {
		t.Fatalf("rds-iam-proxy shutdown: %v %s", err, out)
	}
	if code, _ := s.wait(t, 20*time.Second); code != 3 {
		t.Fatalf("exit %d with a session cut at the deadline, want 3\n%s", code, s.logs)
	}
	if !strings.Contains(s.logs.String(), `why="POST /quitquitquit"`) {
		t.Errorf("the log does not say why it shut down:\n%s", s.logs)
	}
}

// TestSidecarSessionsParkedGauge: with session_reuse the binary's
// /metrics says how many sessions are parked: one after a client leaves
// cleanly, none while the next client holds it, one again after.
// (TestSidecarHealthMetricsAndLimit: without reuse there is no series.)
func TestSidecarSessionsParkedGauge(t *testing.T) {
	w.enter(t)
	pgPort := freePort(t)
	s := startSidecar(t, upstreamsYAML("session_reuse: true", pgUpstream("pg", "127.0.0.1:"+pgPort)))
	parked := `rds_iam_proxy_sessions_parked{upstream="pg"}`
	if got := s.metric(t, parked); got != 0 {
		t.Fatalf("%s = %v before any client, want 0", parked, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	session := func() *pgconn.PgConn {
		c, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := session()
	a.Close(ctx)
	waitFor(t, 10*time.Second, func() bool { return s.metric(t, parked) == 1 })
	b := session()
	if got := s.metric(t, parked); got != 0 {
		t.Errorf("%s = %v while the second client holds the parked session, want 0", parked, got)
	}
	b.Close(ctx)
	waitFor(t, 10*time.Second, func() bool { return s.metric(t, parked) == 1 })
}
