package integration

import (
	"context"
	"database/sql"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestFaultClientVanishesMidResult: a client asks for a 50 MB result,
// reads about 100 rows and disappears, by closing its socket with the
// rest unread (the kernel answers what still comes with a reset) or by a
// reset of its own (SO_LINGER 0, as a killed process's host or a pgx
// cancel with unread data does).
//
// What the client sees: nothing; it is gone. What matters is the rest:
// within 10 s the proxy ends the session (its open count is back to 0),
// the upstream session ends on the server (pg_stat_activity and the
// processlist no longer show the query, so the server stops producing
// the result), other routes serve meanwhile, the next login works at once
// (measured, logged), and goroutines and fds return to their baseline.
func TestFaultClientVanishesMidResult(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		for _, how := range []string{"close", "reset"} {
			marker := "vanish_" + how
			conn := e.startBigResult(t, e.port(r), 50000, marker, 100)
			if n := e.serverSessions(t, marker); n != 1 {
				t.Fatalf("%s: %d server sessions run the query, want 1", how, n)
			}
			if how == "reset" {
				conn.(*net.TCPConn).SetLinger(0)
			}
			conn.Close()
			gone := time.Now()
			waitFor(t, 10*time.Second, func() bool { return r.open(t, e) == 0 })
			proxyDone := time.Since(gone)
			waitFor(t, 10*time.Second, func() bool { return e.serverSessions(t, marker) == 0 })
			t.Logf("client %s mid-result: the proxy ended the session after %s, the server's session was gone after %s",
				how, proxyDone.Round(time.Millisecond), time.Since(gone).Round(time.Millisecond))
			e.otherSessionsWork(t, r)
			t.Logf("recovery: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
		}
	})
}

// startBigResult logs in through port with the engine's driver, starts a
// query of rows rows of 1,000 bytes (marker in its text), reads the first
// read rows and returns the client's socket, with the rest unread.
func (e engine) startBigResult(t *testing.T, port string, rows int, marker string, read int) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	q := e.bigSQL(rows, marker)
	if e.engine == "postgres" {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			t.Fatal(err)
		}
		rr := c.ExecParams(ctx, q, nil, nil, nil, nil)
		for n := 0; n < read; n++ {
			if !rr.NextRow() {
				_, err := rr.Close()
				t.Fatalf("the result ended after %d rows: %v", n, err)
			}
		}
		return c.Conn()
	}
	var mu sync.Mutex
	var sock net.Conn
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		mu.Lock()
		sock = c
		mu.Unlock()
		return c, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	rs, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	for n := 0; n < read; n++ {
		if !rs.Next() {
			t.Fatalf("the result ended after %d rows: %v", n, rs.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return sock
}
