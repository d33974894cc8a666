package integration

import (
	"strings"
	"testing"
	"time"
)

// TestFaultResetDuringLogin resets the connection between the proxy and
// the upstream (an RST, as from a crashed host or a firewall that lost
// the connection) 100 bytes into what the upstream sends: in the middle
// of the TLS handshake for Postgres (after its 'S'), of the greeting or
// the TLS handshake for MySQL.
//
// What the client sees, within 10 s (it is at once): its protocol's error
// from the proxy, naming the upstream and that it reset the connection
// during the login, with a fix: psql prints "FATAL: rds-iam-proxy: the
// upstream ... reset the connection during the login. Fix: ..."; the
// mariadb client prints "ERROR 1429 (HY000): rds-iam-proxy: ..." (no
// SQLSTATE before the greeting, as servers do). The proxy's other routes
// serve meanwhile; the next login on the same route works at once
// (measured, logged); goroutines and fds return to their baseline.
func TestFaultResetDuringLogin(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		in := e.inj(r)
		in.resetAfter(100)
		start := time.Now()
		_, stderr, err := e.cli(t, e.port(r), "SELECT 1")
		took := time.Since(start)
		if err == nil {
			t.Fatal("the login worked through a reset")
		}
		if in.resets.Load() != 1 {
			t.Fatalf("%d resets done, want 1: the fault did not hit the login", in.resets.Load())
		}
		t.Logf("the client was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		wantClientError(t, e, stderr, "reset the connection during the login", "Fix: check that the DB is up")
		if took > 10*time.Second {
			t.Fatalf("the client waited %s for its error", took)
		}
		e.otherSessionsWork(t, r)
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}

// TestFaultResetDuringQuery resets the connection to the upstream while a
// query runs (the server has not answered yet: SELECT pg_sleep(3),
// SELECT SLEEP(3)).
//
// What the client sees, within 10 s (at once): the proxy's error in its
// protocol, in place of the answer: psql prints "FATAL: rds-iam-proxy:
// the upstream reset the connection in the middle of the session. Fix:
// connect again; ..." (SQLSTATE 08006); the mariadb client prints
// "ERROR 1429 (08S01)" with the same text. The session on the server
// ends. Other routes serve meanwhile; a new login on the route works at
// once; goroutines and fds return to their baseline.
func TestFaultResetDuringQuery(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		in := e.inj(r)
		sleep := map[string]string{"pg": "SELECT pg_sleep(3) AS reset_during_query", "my": "SELECT SLEEP(3) AS reset_during_query"}[e.name]
		type result struct {
			stderr string
			err    error
			took   time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, stderr, err := e.cli(t, e.port(r), sleep)
			done <- result{stderr, err, time.Since(start)}
		}()
		waitFor(t, 20*time.Second, func() bool { return e.serverSessions(t, "reset_during_query") == 1 })
		in.resetAll()
		res := <-done
		if res.err == nil {
			t.Fatal("the query succeeded through a reset")
		}
		t.Logf("the client was told %s after the query started:\n%s", res.took.Round(time.Millisecond), res.stderr)
		wantClientError(t, e, res.stderr, "the upstream reset the connection in the middle of the session", "Fix: connect again")
		if res.took > 10*time.Second {
			t.Fatalf("the client waited %s", res.took)
		}
		waitFor(t, 10*time.Second, func() bool { return e.serverSessions(t, "reset_during_query") == 0 })
		e.otherSessionsWork(t, r)
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}

// TestFaultResetMidResult resets the connection to the upstream 1 MB
// into a 20 MB result.
//
// What the client sees, within 10 s (at once): its driver's error for a
// lost connection after the rows that arrived (pgconn: unexpected EOF;
// go-sql-driver: invalid connection), never a hang and never rows from
// elsewhere. The proxy cannot add its own error here: the reset falls
// inside a row, and anything inserted would be read as the rest of it;
// its log has the cause. The server's session ends. Other routes serve
// meanwhile; the next login on the route works at once; goroutines and
// fds return to their baseline.
func TestFaultResetMidResult(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		in := e.inj(r)
		// Armed once the driver's login has gone through (its first
		// round trips pass below the 1 MB mark anyway).
		in.resetAfter(1 << 20)
		start := time.Now()
		rows, _, err := e.bigResult(t, e.port(r), 20000)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("all %d rows arrived through a reset", rows)
		}
		if in.resets.Load() != 1 {
			t.Fatalf("%d resets, want 1", in.resets.Load())
		}
		t.Logf("after %d rows the driver said, %s after the query started: %v", rows, took.Round(time.Millisecond), err)
		if rows == 0 || rows >= 20000 {
			t.Fatalf("%d rows before the error; want some of the 20000", rows)
		}
		if took > 10*time.Second {
			t.Fatalf("the client waited %s", took)
		}
		waitFor(t, 10*time.Second, func() bool { return e.serverSessions(t, "big_result") == 0 })
		e.otherSessionsWork(t, r)
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}

// wantClientError checks that a command-line client printed the proxy's
// error in its protocol's form, with each of parts.
func wantClientError(t *testing.T, e engine, stderr string, parts ...string) {
	t.Helper()
	prefix := map[string]string{"pg": "FATAL:  rds-iam-proxy: ", "my": "ERROR 1429 ("}[e.name]
	if !strings.Contains(stderr, prefix) || !strings.Contains(stderr, "rds-iam-proxy: ") {
		t.Fatalf("%s did not print the proxy's error (%q):\n%s", e.name, prefix, stderr)
	}
	for _, p := range parts {
		if fix, ok := strings.CutPrefix(p, "Fix: "); ok && e.name == "pg" {
			p = "HINT:  " + fix // psql prints the fix as the HINT
		}
		if !strings.Contains(stderr, p) {
			t.Errorf("the client's error lacks %q:\n%s", p, stderr)
		}
	}
}
