package integration

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// TestFaultBlackHoleDuringLogin swallows everything between the proxy
// and the upstream with toxiproxy's timeout toxic: the TCP connection
// opens (toxiproxy accepts it) and then no byte comes back, as from a
// server that hangs or a middlebox that holds the traffic.
//
// What the client sees: the proxy's connect timeout (connect_timeout, 3 s
// here, 15 s by default) ends the login with its protocol's error,
// naming the upstream and that it did not complete the login in time,
// with a fix (psql: "FATAL: rds-iam-proxy: the upstream ... did not
// complete the login in time. Fix: ..."; mariadb: "ERROR 1429 (HY000):
// ..."), within 15 s. Other routes serve meanwhile. Once the toxic is
// gone a new login works at once (measured, logged); goroutines and fds
// return to their baseline.
func TestFaultBlackHoleDuringLogin(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		hole := e.inj(r).bothWays(t, "blackhole", "timeout", map[string]any{"timeout": 0})
		start := time.Now()
		_, stderr, err := e.cli(t, e.port(r), "SELECT 1")
		took := time.Since(start)
		if err == nil {
			t.Fatal("the login worked through a black hole")
		}
		t.Logf("the client was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		wantClientError(t, e, stderr, "did not complete the login in time", "Fix: check that the DB is reachable")
		if took < 2500*time.Millisecond || took > 15*time.Second {
			t.Fatalf("the client was told after %s; want the 3 s connect timeout", took)
		}
		e.otherSessionsWork(t, r)
		hole()
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}

// TestFaultBlackHoleInSession cuts the network path to the upstream for
// real (see blackhole: packets dropped, nothing acknowledged, no RST)
// under open sessions, with upstream_tcp_timeout at 3 s (30 s by
// default).
//
// What the client sees:
//   - a query sent into the black hole: the proxy's error in its
//     protocol within 15 s (the TCP user timeout ends the upstream socket
//     after 3 s of unacknowledged data): psql prints "FATAL: rds-iam-proxy:
//     the upstream stopped answering: ... the network path to it looks
//     dead. Fix: connect again; ..."; mariadb prints "ERROR 1429 (08S01)"
//     with the same text. Before the fix the query waited for the
//     kernel's retransmission limit, about 15 minutes.
//   - an idle session: keepalive probes go unanswered and the proxy ends
//     the session within 20 s (3 s of unanswered probes after 2 s idle,
//     then the 5 s linger the relay gives a client after the upstream
//     ended); its client's next query fails at once (on Postgres with the
//     proxy's FATAL, which was waiting in its socket; go-sql-driver says
//     "invalid connection").
//   - a new login: the dial times out at connect_timeout with "cannot
//     reach the upstream ...: i/o timeout. Fix: ..." (MySQL; or
//     "connection timed out" when the TCP user timeout ends the
//     connect's retries first) or "the
//     upstream ... did not complete the login in time. Fix: ..." (pgconn
//     reports the dial's timeout as the login's), within 15 s.
//
// Other routes serve meanwhile. Once the path is back a new login works
// at once (measured, logged); goroutines and fds return to their
// baseline. The servers' own sessions behind the cut are not checked:
// nothing reaches them to end them until the path is back, as in a real
// partition.
//
// toxiproxy's timeout toxic cannot show any of this in a session: it
// acknowledges what it then withholds, so no timer of the proxy's TCP
// stack fires, just as for a server that hangs in the middle of a query;
// nothing tells that apart from a long query, and only --idle-timeout
// (off by default) or the client's own timeout ends such a session.
func TestFaultBlackHoleInSession(t *testing.T) {
	w.enter(t)
	pgHole, myHole := newBlackhole(t, w.front.Addr()), newBlackhole(t, w.my.Addr())
	r := startFaultRigVia(t, worldPG(pgHole.addr()), worldMy(myHole.addr()))
	holes := map[string]*blackhole{"pg": pgHole, "my": myHole}
	forEngine(t, r, func(t *testing.T, e engine) {
		hole := holes[e.name]

		busy := startCLISession(t, e, e.port(r))
		busy.send("SELECT 'logged in';\n")
		waitFor(t, 20*time.Second, func() bool { return strings.Contains(busy.output(), "logged in") })
		idle := openIdleSession(t, e, e.port(r))
		if n := r.open(t, e); n != 2 {
			t.Fatalf("%v sessions open through the route, want 2", n)
		}

		hole.cut()
		sent := time.Now()
		busy.send("SELECT 'sent into the black hole';\n")
		stderr, err := busy.wait(t, 60*time.Second)
		took := time.Since(sent)
		if err == nil {
			t.Fatal("the query succeeded through a black hole")
		}
		t.Logf("the client of the busy session was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		wantClientError(t, e, stderr, "the upstream stopped answering", "the network path to it looks dead", "Fix: connect again")
		if took > 15*time.Second {
			t.Fatalf("the client waited %s for its error", took)
		}

		waitFor(t, 20*time.Second, func() bool { return r.open(t, e) == 0 })
		t.Logf("the idle session was ended by the proxy %s after the cut", time.Since(sent).Round(time.Millisecond))
		start := time.Now()
		err = idle.query()
		if err == nil {
			t.Fatal("the idle session still answers through a black hole")
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the idle session's next query took %s to fail", time.Since(start))
		}
		t.Logf("the idle session's next query failed at once: %v", err)

		start = time.Now()
		_, stderr, err = e.cli(t, e.port(r), "SELECT 1")
		took = time.Since(start)
		if err == nil {
			t.Fatal("a login worked through a black hole")
		}
		t.Logf("a new login was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		// The dial's timeout reaches the proxy as the login's (pgconn
		// reports a dial timeout as its context's): either text is right.
		if !strings.Contains(stderr, "cannot reach the upstream") {
			wantClientError(t, e, stderr, "did not complete the login in time", "Fix: check that the DB is reachable")
		} else {
			wantClientError(t, e, stderr, "Fix: check that the DB is running and reachable")
		}
		if took > 15*time.Second {
			t.Fatalf("the new login waited %s", took)
		}

		e.otherSessionsWork(t, r)
		hole.restore()
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 20*time.Second).Round(time.Millisecond))
	})
}

// cliSession is the engine's command-line client reading statements from
// a pipe, so a test can act between its login and its query.
type cliSession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout syncbuf.Buffer
	stderr syncbuf.Buffer
	done   chan error
}

func startCLISession(t *testing.T, e engine, port string) *cliSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	var cmd *exec.Cmd
	if e.engine == "postgres" {
		cmd = exec.CommandContext(ctx, w.pg.BinPath("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn(port, iamUser))
	} else {
		cmd = exec.CommandContext(ctx, w.My.BinPath("mariadb"), "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", port,
			"-u", iamUser, "--skip-ssl", "--batch", "--unbuffered", "--skip-column-names", "--connect-timeout=20", appDB)
	}
	s := &cliSession{cmd: cmd, done: make(chan error, 1)}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	cmd.Stdout, cmd.Stderr = &s.stdout, &s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill() })
	return s
}

func (s *cliSession) send(sql string) { io.WriteString(s.stdin, sql) }

// output is what the client printed so far.
func (s *cliSession) output() string { return s.stdout.String() }

// wait waits for the client to exit and returns its stderr and error.
func (s *cliSession) wait(t *testing.T, limit time.Duration) (string, error) {
	t.Helper()
	select {
	case err := <-s.done:
		return s.stderr.String(), err
	case <-time.After(limit):
		t.Fatalf("the client still runs %s later (hung)", limit)
		return "", nil
	}
}

// idleSession is a logged-in driver session that waits for the test.
type idleSession struct{ query func() error }

func openIdleSession(t *testing.T, e engine, port string) idleSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	if e.engine == "postgres" {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return idleSession{query: func() error {
			qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return c.ExecParams(qctx, "SELECT 1", nil, nil, nil, nil).Read().Err
		}}
	}
	db := faultDB(t, port)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return idleSession{query: func() error {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var one int
		return conn.QueryRowContext(qctx, "SELECT 1").Scan(&one)
	}}
}
