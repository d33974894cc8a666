package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// Session reuse (issue 15), MySQL. Each leak case has client A change its
// session and leave with COM_QUIT; with one session parked per key,
// client B must get A's very session (CONNECTION_ID()) and none of A's
// state. Unclean leaves close the session; KILL QUERY by the id a client
// was greeted with hits its own query. Budget: about 20 s of CI time for
// the whole file.

// startReuseMySQL starts a MySQL proxy with session reuse on (at most
// perKey sessions parked per key; mods edit the rest) and returns it
// running, for its pool.
func startReuseMySQL(t *testing.T, perKey int, mods ...func(*launch.Config)) *launch.Running {
	t.Helper()
	return startRunning(t, mysqlConfig(), append([]func(*launch.Config){func(c *launch.Config) {
		c.SessionReuse, c.PoolMaxIdlePerKey = true, perKey
	}}, mods...)...)
}

// myClient is one go-sql-driver connection through the proxy, with its
// socket (to kill it).
type myClient struct {
	db   *sql.DB
	c    *sql.Conn
	mu   sync.Mutex
	sock net.Conn
}

func myConnect(t *testing.T, ctx context.Context, port string) *myClient {
	t.Helper()
	m := &myClient{}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 20*time.Second, 60*time.Second, 60*time.Second
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		m.mu.Lock()
		m.sock = c
		m.mu.Unlock()
		return c, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.db = sql.OpenDB(connector)
	m.db.SetMaxIdleConns(0) // closing the connection closes it: COM_QUIT
	t.Cleanup(func() { m.db.Close() })
	if m.c, err = m.db.Conn(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return m
}

// one runs q and returns its first column, "NULL", or "error" when the
// server refuses it.
func (m *myClient) one(t *testing.T, ctx context.Context, q string, args ...any) string {
	t.Helper()
	var v sql.NullString
	err := m.c.QueryRowContext(ctx, q, args...).Scan(&v)
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me):
		return "error"
	case err != nil:
		t.Fatalf("%s: %v", q, err)
	case !v.Valid:
		return "NULL"
	}
	return v.String
}

func (m *myClient) exec(t *testing.T, ctx context.Context, q string) {
	t.Helper()
	if _, err := m.c.ExecContext(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// quit closes the connection: go-sql-driver sends COM_QUIT.
func (m *myClient) quit(t *testing.T) {
	t.Helper()
	if err := m.c.Close(); err != nil {
		t.Fatal(err)
	}
	m.db.Close()
}

// kill closes the client's socket without a COM_QUIT.
func (m *myClient) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sock.Close()
}

// waitParkedMy waits until n sessions are parked.
func waitParkedMy(t *testing.T, r *launch.Running, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool { return r.Pool().Idle() == n })
}

// myAdmin is root on the MariaDB server, straight over its socket.
func myAdmin(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", w.My.SocketDSN("root", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitGoneMy waits until the server's thread id has ended.
func waitGoneMy(t *testing.T, ctx context.Context, adm *sql.DB, id string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		var n int
		if err := adm.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "+id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

func TestReuseMySQLLeaksNothing(t *testing.T) {
	w.enter(t)
	r := startReuseMySQL(t, 1)
	port := r.Port()
	ctx := testCtx(t, 60*time.Second)
	for _, tc := range []struct {
		name, check string
		change      []string
	}{
		{"user variable", "SELECT COALESCE(@leak, 'none')", []string{"SET @leak = 42"}},
		{"temporary table", "SELECT COUNT(*) FROM leak_t", []string{"CREATE TEMPORARY TABLE leak_t (x int)"}},
		{"GET_LOCK", "SELECT COALESCE(IS_USED_LOCK('leak_lock') = CONNECTION_ID(), 0)", []string{"DO GET_LOCK('leak_lock', 0)"}},
		{"SQL prepared statement", "EXECUTE leak_p", []string{"PREPARE leak_p FROM 'SELECT 7'"}},
		{"SET SESSION in a transaction", "SELECT CONCAT(@@session.sql_mode, '|', @@session.time_zone, '|', COALESCE(@in_tx, 'none'))",
			[]string{"BEGIN", "SET SESSION sql_mode = 'ANSI'", "SET SESSION time_zone = '+09:00'", "SET @in_tx = 1", "COMMIT"}},
		{"autocommit off", "SELECT @@autocommit", []string{"SET autocommit = 0"}},
		{"database changed by USE", "SELECT DATABASE()", []string{"USE information_schema"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := myConnect(t, ctx, port)
			id := a.one(t, ctx, "SELECT CONNECTION_ID()")
			before := a.one(t, ctx, tc.check)
			for _, q := range tc.change {
				a.exec(t, ctx, q)
			}
			if got := a.one(t, ctx, tc.check); got == before {
				t.Fatalf("the change did not show in its own session (%s = %q both times): the case proves nothing", tc.check, got)
			}
			a.exec(t, ctx, "COMMIT") // autocommit off: the check's own transaction ends
			a.quit(t)
			waitParkedMy(t, r, 1)

			b := myConnect(t, ctx, port)
			if got := b.one(t, ctx, "SELECT CONNECTION_ID()"); got != id {
				t.Fatalf("B is on connection %s, not A's %s: the case proves nothing", got, id)
			}
			if got := b.one(t, ctx, tc.check); got != before {
				t.Errorf("A's change leaked to B: %s = %q, was %q before A's change", tc.check, got, before)
			}
			b.quit(t)
			waitParkedMy(t, r, 1)
		})
	}
}

// A session left in any state but idle outside a transaction is closed:
// the next client gets another one.
func TestReuseMySQLUncleanLeaves(t *testing.T) {
	w.enter(t)
	r := startReuseMySQL(t, 1)
	port := r.Port()
	ctx := testCtx(t, 60*time.Second)
	adm := myAdmin(t)
	for _, tc := range []struct {
		name  string
		leave func(t *testing.T, a *myClient)
	}{
		{"inside BEGIN", func(t *testing.T, a *myClient) {
			a.exec(t, ctx, "BEGIN")
			a.exec(t, ctx, "SELECT 1 FROM DUAL")
			a.quit(t)
		}},
		{"killed socket", func(t *testing.T, a *myClient) { a.kill() }},
		{"mid result set", func(t *testing.T, a *myClient) {
			rows, err := a.c.QueryContext(ctx, "SELECT REPEAT('x', 1000) FROM information_schema.COLUMNS a, information_schema.COLUMNS b LIMIT 100000")
			if err != nil {
				t.Fatal(err)
			}
			if !rows.Next() {
				t.Fatalf("no first row: %v", rows.Err())
			}
			a.kill()
			rows.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A session is parked first, so that A takes one over: the
			// case is about a reused session's end.
			p := myConnect(t, ctx, port)
			p.quit(t)
			waitParkedMy(t, r, 1)
			a := myConnect(t, ctx, port)
			id := a.one(t, ctx, "SELECT CONNECTION_ID()")
			tc.leave(t, a)
			waitGoneMy(t, ctx, adm, id)
			if n := r.Pool().Idle(); n != 0 {
				t.Fatalf("%d sessions parked after an unclean leave", n)
			}
			b := myConnect(t, ctx, port)
			if got := b.one(t, ctx, "SELECT CONNECTION_ID()"); got == id {
				t.Fatalf("B got A's connection %s", id)
			}
			b.quit(t)
			waitParkedMy(t, r, 1)
		})
	}
}

// KILL QUERY by a reused session's id, from another connection, ends the
// query of the client on it now; the mysql client's own idea of its
// connection id (from the greeting) is the session's.
func TestReuseMySQLKillAndGreeting(t *testing.T) {
	w.enter(t)
	r := startReuseMySQL(t, 1)
	port := r.Port()
	ctx := testCtx(t, 60*time.Second)
	adm := myAdmin(t)

	a := myConnect(t, ctx, port)
	id := a.one(t, ctx, "SELECT CONNECTION_ID()")
	a.quit(t)
	waitParkedMy(t, r, 1)
	// A probe that reads the greeting and goes (a health check) does not
	// use up the parked session: it goes back to the pool.
	probe, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	probe.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := probe.Read(make([]byte, 4)); err != nil {
		t.Fatalf("probe: no greeting: %v", err)
	}
	probe.Close()
	waitFor(t, 10*time.Second, func() bool { return r.Pool().Idle() == 1 })
	b := myConnect(t, ctx, port)
	if got := b.one(t, ctx, "SELECT CONNECTION_ID()"); got != id {
		t.Fatalf("B is on connection %s, not A's %s", got, id)
	}
	done := make(chan string, 1)
	start := time.Now()
	go func() {
		var v sql.NullString
		err := b.c.QueryRowContext(ctx, "SELECT SLEEP(30)").Scan(&v)
		done <- fmt.Sprintf("%s %v", v.String, err)
	}()
	waitFor(t, 10*time.Second, func() bool {
		var n int
		adm.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "+id+" AND INFO LIKE 'SELECT SLEEP%'").Scan(&n)
		return n == 1
	})
	k := myConnect(t, ctx, port)
	if got := k.one(t, ctx, "SELECT CONNECTION_ID()"); got == id {
		t.Fatalf("the killer got B's connection %s", id)
	}
	k.exec(t, ctx, "KILL QUERY "+id)
	select {
	case got := <-done:
		// MariaDB ends a killed SLEEP with 1 or error 1317.
		if !strings.HasPrefix(got, "1 ") && !strings.Contains(got, "1317") {
			t.Fatalf("B's query after KILL QUERY: %s", got)
		}
		if el := time.Since(start); el > 20*time.Second {
			t.Fatalf("B's query ended after %s: not by the KILL", el)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("KILL QUERY did not end B's query")
	}
	if got := b.one(t, ctx, "SELECT CONNECTION_ID()"); got != id {
		t.Fatalf("B's session changed to %s after the KILL QUERY", got)
	}
	b.quit(t)
	k.quit(t)

	// The mysql client: A leaves a user variable and quits; B (the same
	// key) is on A's session, with A's id in its greeting, and without
	// A's variable.
	waitFor(t, 10*time.Second, func() bool { return r.Pool().Idle() >= 1 })
	out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SET @leak = 'from A'; SELECT CONNECTION_ID()")
	if err != nil {
		t.Fatalf("mysql A: %v\n%s", err, stderr)
	}
	cliID := strings.TrimSpace(out)
	waitParkedMy(t, r, 1)
	out, stderr, err = mysqlCLI(t, port, iamUser, "-e", "status; SELECT CONNECTION_ID(), COALESCE(@leak, 'none')")
	if err != nil {
		t.Fatalf("mysql B: %v\n%s", err, stderr)
	}
	m := regexp.MustCompile(`Connection id:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no connection id in the mysql client's status:\n%s", out)
	}
	if want := cliID + "\tnone"; !strings.Contains(out, "\n"+want+"\n") || m[1] != cliID {
		t.Fatalf("mysql B: greeted as %s, want A's %s and %q in:\n%s", m[1], cliID, want, out)
	}

	// A client with another key (go-sql-driver's capabilities and
	// character set differ from the mysql client's) is greeted with the
	// parked session's id before its key is known: that session is then
	// closed, never handed to anyone else, and the client logs in anew.
	waitParkedMy(t, r, 1)
	c := myConnect(t, ctx, port)
	if got := c.one(t, ctx, "SELECT CONNECTION_ID()"); got == cliID {
		t.Fatalf("a client with another key got the mysql client's session %s", cliID)
	}
	waitGoneMy(t, ctx, adm, cliID)
	c.quit(t)
}

// 20 clients, 20 connections each, with reuse: every connection finds a
// session without another client's variable, keeps its own, and ends; none
// hangs, and sessions are reused.
func TestReuseMySQLConcurrent(t *testing.T) {
	w.enter(t)
	r := startReuseMySQL(t, 0)
	port := r.Port()
	ctx := testCtx(t, 90*time.Second)
	const clients, conns = 20, 20
	var wg sync.WaitGroup
	var done atomic.Int64
	var mu sync.Mutex
	ids := map[string]int{}
	errs := make(chan error, clients*conns)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range conns {
				if err := concurrentConn(ctx, port, fmt.Sprintf("c%d-%d", i, j), ids, &mu); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := done.Load(); n != clients*conns {
		t.Fatalf("%d of %d connections finished", n, clients*conns)
	}
	if len(ids) == clients*conns {
		t.Fatalf("no session was reused over %d connections", clients*conns)
	}
	t.Logf("%d connections on %d sessions", clients*conns, len(ids))
}

func concurrentConn(ctx context.Context, port, me string, ids map[string]int, mu *sync.Mutex) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 20*time.Second, 30*time.Second, 30*time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(0)
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", me, err)
	}
	defer c.Close()
	var id string
	var owner sql.NullString
	if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID(), @owner").Scan(&id, &owner); err != nil {
		return fmt.Errorf("%s: %w", me, err)
	}
	if owner.Valid {
		return fmt.Errorf("%s: session %s has another client's @owner %q", me, id, owner.String)
	}
	if _, err := c.ExecContext(ctx, "SET @owner = ?", me); err != nil { // a prepared statement
		return fmt.Errorf("%s: %w", me, err)
	}
	var got string
	if err := c.QueryRowContext(ctx, "SELECT @owner FROM DUAL WHERE ? = ?", 1, 1).Scan(&got); err != nil || got != me {
		return fmt.Errorf("%s: @owner %q, %v", me, got, err)
	}
	mu.Lock()
	ids[id]++
	mu.Unlock()
	return c.Close()
}
