package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestCancelWithPgconn cancels pg_sleep(30) with a CancelRequest sent to the
// proxy on a new connection, with the key the proxy gave the client.
func TestCancelWithPgconn(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// The client holds the proxy's key, not the upstream backend's.
	res := conn.ExecParams(ctx, "SELECT pg_backend_pid()::text", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := string(res.Rows[0][0]); conn.PID() == 0 || got == fmt.Sprint(conn.PID()) {
		t.Fatalf("client cancel pid %d, upstream pid %s: the proxy must hand out its own keys", conn.PID(), got)
	}

	done := make(chan error, 1)
	go func() {
		done <- conn.ExecParams(ctx, "SELECT pg_sleep(30) AS pgconn_cancel_test", nil, nil, nil, nil).Read().Err
	}()
	// Cancel only once the query runs upstream (a cancel before it arrives
	// is ignored by PostgreSQL, as it should be).
	waitFor(t, 10*time.Second, func() bool {
		out, _, _ := psql(t, w.pg.ConnString("postgres", appDB), "-c", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pgconn_cancel_test' AND state = 'active' AND pid <> pg_backend_pid()")
		return strings.TrimSpace(out) == "1"
	})
	logMark := len(w.logs.String())
	start := time.Now()
	if err := conn.CancelRequest(ctx); err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	select {
	case err := <-done:
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("pg_sleep ended with %v, want SQLSTATE 57014 (query_canceled)", err)
		}
		// A cancel not passed on would leave pg_sleep(30) running; 3 s
		// leaves a loaded machine room for the cancel's own TLS dial.
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the query ended %s after the cancel request, want under 3 s", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pg_sleep(30) still running 5 s after the cancel request")
	}
	// The session goes on.
	if res := conn.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read(); res.Err != nil {
		t.Fatalf("after cancel: %v", res.Err)
	}
	// The cancel reached the RDS front over TLS (the key never travels in
	// the clear).
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(w.logs.String()[logMark:], `msg="cancel request forwarded" component=emulator`)
	})
	for _, line := range strings.Split(w.logs.String()[logMark:], "\n") {
		if strings.Contains(line, `msg="cancel request forwarded" component=emulator`) && !strings.Contains(line, "tls=true") {
			t.Fatalf("the cancel reached the RDS front without TLS: %s", line)
		}
	}
}

// TestCancelWithPsqlCtrlC is psql's Ctrl-C: SIGINT makes psql send a
// CancelRequest through the proxy.
func TestCancelWithPsqlCtrlC(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.pg.BinPath("psql"), "-X", "-d", dsn(port, iamUser), "-c", "SELECT pg_sleep(30)")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the query is running upstream, then press Ctrl-C.
	waitFor(t, 10*time.Second, func() bool {
		out, _, _ := psql(t, dsn(port, iamUser), "-c", "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
		return strings.TrimSpace(out) == "1"
	})
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	if err == nil {
		t.Fatal("psql exited 0: the query was not cancelled")
	}
	if !strings.Contains(stderr.String(), "canceling statement due to user request") {
		t.Fatalf("psql stderr %q, want the cancel message", stderr.String())
	}
	if took > 3*time.Second {
		t.Fatalf("psql took %s to end after Ctrl-C, want under 3 s (its query sleeps 30 s)", took)
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
