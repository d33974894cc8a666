package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// TestPGEnvironmentDoesNotReachUpstreamLogins: PG* variables in the proxy's
// environment are for clients on the proxy's machine, not for the proxy's
// own upstream logins. Each of these would break or bend every login if
// pgconn read them.
func TestPGEnvironmentDoesNotReachUpstreamLogins(t *testing.T) {
	w.enter(t)
	env := map[string]string{
		"PGREQUIREAUTH": "scram-sha-256", "PGCHANNELBINDING": "require", "PGSSLCERTMODE": "require",
		"PGCONNECT_TIMEOUT": "abc", "PGTARGETSESSIONATTRS": "bogus",
		"PGAPPNAME": "from-proxy-env", "PGOPTIONS": "-c search_path=nowhere", "PGPASSFILE": "/nonexistent",
		"PGSSLNEGOTIATION": "direct", "PGMAXPROTOCOLVERSION": "latest", "PGMINPROTOCOLVERSION": "3.2",
		"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/nonexistent", "PGSSLCERT": "/nonexistent", "PGSSLKEY": "/nonexistent",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	port := startProxy(t) // reads its configuration now
	for k := range env {
		unsetEnv(t, k) // the test's own client must not see them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, iamUser)+" application_name=from-client")
	if err != nil {
		t.Fatalf("login through a proxy started with PG* variables: %v", err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT current_setting('application_name') || ' ' || current_setting('search_path')", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := string(res.Rows[0][0]); got != `from-client "$user", public` {
		t.Fatalf("session settings %q: the proxy's PG* environment leaked into the login", got)
	}
}

// TestMaxConnections: over the cap a client gets 53300 with the proxy's
// explanation; when a slot frees the next client connects.
func TestMaxConnections(t *testing.T) {
	w.enter(t)
	port := startProxy(t, func(c *launch.Config) { c.MaxConnections = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT 1")
	if err == nil || !strings.Contains(stderr, "rds-iam-proxy: too many connections: the proxy's limit of 1 is reached") || !strings.Contains(stderr, "--max-connections") {
		t.Fatalf("over the cap: %v\n%s", err, stderr)
	}
	if code := connectCode(t, port, iamUser); code != "53300" {
		t.Fatalf("SQLSTATE %s, want 53300", code)
	}
	first.Close(ctx)
	waitFor(t, 5*time.Second, func() bool { return connectCode(t, port, iamUser) == "" })
}

// startBinary runs the built proxy against the emulated DB and waits until
// it listens.
func startBinary(t *testing.T, extra ...string) (cmd *exec.Cmd, port string, logs *syncbuf.Buffer) {
	t.Helper()
	port = freePort(t)
	logs = &syncbuf.Buffer{}
	args := append([]string{
		"--endpoint", fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()),
		"--dial-address", w.front.Addr(), "--listen", "127.0.0.1:" + port, "--log-level", "debug",
	}, extra...)
	cmd = exec.Command(proxyBinary(t), args...)
	cmd.Env = append(os.Environ(), "RDS_IAM_PROXY_CA_BUNDLE="+w.caFile) // flags mirror env
	cmd.Stderr = io.MultiWriter(logs, w.logs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
	return cmd, port, logs
}

func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) (exitCode int, took time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), time.Since(start)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("still running %s later", limit)
	}
	return -1, 0
}

// TestBinaryDrainsOnSIGTERM: a session open at SIGTERM goes on working (a
// transaction in flight commits); once it ends the proxy exits 0.
func TestBinaryDrainsOnSIGTERM(t *testing.T) {
	w.enter(t)
	cmd, port, logs := startBinary(t, "--max-shutdown-delay", "20s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.pg.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name = 'drain'") })
	if err := conn.Exec(ctx, "BEGIN; INSERT INTO items (name) VALUES ('drain')").Close(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	// Draining: new connections are refused, the open session goes on.
	waitFor(t, 5*time.Second, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := conn.Exec(ctx, "COMMIT").Close(); err != nil {
		t.Fatalf("commit during the drain: %v", err)
	}
	conn.Close(ctx)
	if code, took := waitExit(t, cmd, 10*time.Second); code != 0 || took > 5*time.Second {
		t.Fatalf("exit %d after %s once the last session ended; want 0 at once\n%s", code, took, logs)
	}
	out, _, err := psql(t, w.pg.ConnString("postgres", appDB), "-c", "SELECT count(*) FROM items WHERE name = 'drain'")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("the transaction in flight did not commit: %v %q", err, out)
	}
}

// TestBinaryDrainDeadline: a client still in its handshake when the drain
// starts (a silent TCP probe) is told at once that the proxy is shutting
// down (57P01) and does not hold the drain; a logged-in session still open
// at --max-shutdown-delay is cut, and the exit status (3) says so.
func TestBinaryDrainDeadline(t *testing.T) {
	w.enter(t)
	// A deadline of 5 s keeps "at once" (the handshake) and "at the
	// deadline" (the session cut) seconds apart on a loaded machine.
	cmd, port, logs := startBinary(t, "--max-shutdown-delay", "5s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idle, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	silent, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, 5*time.Second, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `msg="connection accepted"`) && strings.Contains(line, "client="+silent.LocalAddr().String()) {
				return true
			}
		}
		return false
	})
	before := time.Now() // the floor's start: the drain cannot begin earlier
	cmd.Process.Signal(syscall.SIGTERM)
	signalled := time.Now()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(silent)
	if len(got) < 5 || got[0] != 'E' || int(binary.BigEndian.Uint32(got[1:5]))+1 > len(got) {
		t.Fatalf("the waiting client got %q, want an ErrorResponse", got)
	}
	if took := time.Since(signalled); took > 2500*time.Millisecond {
		t.Errorf("the client in its handshake was told after %v; want at once, not at the deadline", took)
	}
	msg := decodeError(t, got[:binary.BigEndian.Uint32(got[1:5])+1])
	if msg.Code != "57P01" || !strings.Contains(msg.Message, "shutting down") {
		t.Fatalf("error %s %q, want 57P01 shutting down", msg.Code, msg.Message)
	}
	code, _ := waitExit(t, cmd, 20*time.Second)
	if took := time.Since(before); code != 3 || took < 5*time.Second || took > 10*time.Second {
		t.Fatalf("exit %d after %s; want 3 (a session cut) at the 5 s deadline after SIGTERM\n%s", code, took, logs)
	}
}
