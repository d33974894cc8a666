package integration

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestFaultHalfCloseFromServer makes the upstream side send a FIN (it is
// done sending) while the session goes on, and keep reading what the
// proxy sends, as a server or a middlebox that shuts down its side.
//
// What the client sees:
//   - during a query (SELECT pg_sleep(3), SELECT SLEEP(3)): the proxy's
//     error in its protocol at once, within 10 s: psql prints "FATAL:
//     rds-iam-proxy: the upstream closed the connection in the middle of
//     the session, without an error of its own. Fix: connect again; ...";
//     mariadb prints "ERROR 1429 (08S01)" with the same text.
//   - while the client and the proxy still write (Postgres: COPY FROM
//     STDIN of an endless stream; MySQL: a 12 MB statement, more than the
//     socket buffers on the way hold; both slowed to 1 MB/s toward the
//     server so the FIN comes in the middle): Postgres gets the same
//     FATAL (SQLSTATE 08006) during its COPY, at once, since the proxy
//     speaks between the server's messages; a MySQL client cannot be told
//     inside a command it is still sending, and go-sql-driver reports the
//     closed connection ("invalid connection") once its statement is out,
//     within 15 s. (Had the whole statement passed the proxy, the client
//     would get the proxy's ERR 1429 as its answer.) The proxy never waits
//     on the half-closed side: it passes the FIN on, gives the client the
//     linger (5 s per read) and ends.
//
// The server's sessions end. Other routes serve meanwhile; the next login
// works at once (measured, logged); goroutines and fds return to their
// baseline.
func TestFaultHalfCloseFromServer(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		in := e.inj(r)
		sleep := map[string]string{"pg": "SELECT pg_sleep(3) AS half_closed", "my": "SELECT SLEEP(3) AS half_closed"}[e.name]
		type result struct {
			stderr string
			err    error
		}
		done := make(chan result, 1)
		go func() {
			_, stderr, err := e.cli(t, e.port(r), sleep)
			done <- result{stderr, err}
		}()
		waitFor(t, 20*time.Second, func() bool { return e.serverSessions(t, "half_closed") == 1 })
		if n := in.halfClose(); n != 1 {
			t.Fatalf("%d connections half-closed, want 1", n)
		}
		closed := time.Now()
		res := <-done
		took := time.Since(closed)
		if res.err == nil {
			t.Fatal("the query succeeded after the server's FIN")
		}
		t.Logf("during a query the client was told after %s:\n%s", took.Round(time.Millisecond), res.stderr)
		wantClientError(t, e, res.stderr, "the upstream closed the connection in the middle of the session", "Fix: connect again")
		if took > 10*time.Second {
			t.Fatalf("the client waited %s", took)
		}
		waitFor(t, 10*time.Second, func() bool { return e.serverSessions(t, "half_closed") == 0 })

		// The proxy still writing: the client's stream is slowed toward
		// the server so the FIN falls in its middle.
		slow := in.toxic(t, "slow_up", "bandwidth", "upstream", map[string]any{"rate": 1000})
		errc := make(chan error, 1)
		mark := in.up.Load()
		go func() { errc <- e.keepWriting(t, e.port(r)) }()
		waitFor(t, 20*time.Second, func() bool { return in.up.Load()-mark > 1<<20 })
		if n := in.halfClose(); n != 1 {
			t.Fatalf("%d connections half-closed, want 1", n)
		}
		closed = time.Now()
		var err error
		select {
		case err = <-errc:
		case <-time.After(30 * time.Second):
			t.Fatal("the writing client still runs 30 s after the server's FIN (hung)")
		}
		took = time.Since(closed)
		if err == nil {
			t.Fatal("the write succeeded after the server's FIN")
		}
		t.Logf("while writing, the client was told after %s: %v", took.Round(time.Millisecond), err)
		if e.engine == "postgres" && !strings.Contains(err.Error(), "the upstream closed the connection in the middle of the session") {
			t.Errorf("COPY ended with %v; want the proxy's FATAL", err)
		}
		if took > 15*time.Second {
			t.Fatalf("the writing client waited %s", took)
		}
		slow()
		waitFor(t, 10*time.Second, func() bool { return e.serverSessions(t, "still_writing") == 0 })
		e.otherSessionsWork(t, r)
		t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}

// keepWriting logs in through port and sends the server more than it can
// take in quickly: an endless COPY FROM STDIN (Postgres) or a long
// statement (MySQL: 12 MB, under MariaDB's 16 MB max_allowed_packet). It
// returns how that ended.
func (e engine) keepWriting(t *testing.T, port string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if e.engine == "postgres" {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TEMP TABLE still_writing (v text)").ReadAll(); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		_, err = c.CopyFrom(ctx, endless{}, "COPY still_writing FROM STDIN")
		return err
	}
	db := faultDB(t, port)
	defer db.Close()
	var n int
	return db.QueryRowContext(ctx, "SELECT LENGTH('"+strings.Repeat("x", 12<<20)+"') AS still_writing").Scan(&n)
}

// endless is COPY text data that never ends: one short row after another.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	row := "still writing\n"
	n := 0
	for n+len(row) <= len(p) {
		n += copy(p[n:], row)
	}
	if n == 0 {
		return 0, io.ErrShortBuffer
	}
	return n, nil
}
