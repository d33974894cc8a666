package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
)

// Bounds for the flood tests, generous on purpose: the proxy's default cap
// on connections logging in (max_handshakes), its bound on refusals in
// flight (each a socket), and room for scrapes, sessions and a few
// connections being closed. Without the cap a flood of 5,000 holds 5,000.
const (
	defaultMaxHandshakes = 1024
	floodFDSlack         = 64 + 150
)

// afterSlack is how far above the baseline fds and goroutines may stay
// once a flood is gone: a scrape, a keep-alive, a timer.
var afterSlack = map[string]float64{"process_open_fds": 8, "go_goroutines": 12}

// TestLimitsPostgresSlowClients: 5,000 clients connect to the real binary
// and send their startup message a byte a second. With the default
// settings the proxy holds at most max_handshakes of them, an open session
// keeps working, new clients (pgconn) log in once the flood has been
// there long enough for its oldest to be evicted (2 s), and when the slow
// clients are gone the fds and goroutines are back at their baseline.
// Budget: about 30 s.
func TestLimitsPostgresSlowClients(t *testing.T) {
	w.enter(t)
	pgPort := freePort(t)
	s := startSidecar(t, upstreamsYAML("", pgUpstream("pg", "127.0.0.1:"+pgPort)), "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	open, err := pgconn.Connect(ctx, dsn(pgPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	base := baseline(t, s.admin)
	sampler := startPeakSampler(s.admin, nil, "process_open_fds", "go_goroutines")

	flood := startSlowFlood(t, "127.0.0.1:"+pgPort, 5000, pgStartupPacket(iamUser), true)
	t.Logf("flood of 5000 dialed: %s", describe(flood))
	// Past the eviction grace: the oldest slow clients are evictable.
	time.Sleep(2500 * time.Millisecond)
	for i := range 4 {
		res := open.ExecParams(ctx, "SELECT 41 + 1", nil, nil, nil, nil).Read()
		if res.Err != nil || string(res.Rows[0][0]) != "42" {
			t.Fatalf("the open session during the flood: %v %v", res.Rows, res.Err)
		}
		start := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := pgconn.Connect(cctx, dsn(pgPort, iamUser))
		if err != nil {
			ccancel()
			t.Fatalf("new client %d during the flood (%s): %v", i, describe(flood), err)
		}
		r := c.ExecParams(cctx, "SELECT current_user", nil, nil, nil, nil).Read()
		c.Close(cctx)
		ccancel()
		if r.Err != nil || string(r.Rows[0][0]) != iamUser {
			t.Fatalf("new client %d during the flood: %v %v", i, r.Rows, r.Err)
		}
		t.Logf("new client %d logged in during the flood in %v", i, time.Since(start).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
	}
	peak := sampler.halt()
	t.Logf("flood: %s; baseline %v, peak %v", describe(flood), base, peak)
	if limit := base["process_open_fds"] + defaultMaxHandshakes + floodFDSlack; peak["process_open_fds"] > limit {
		t.Errorf("the proxy held %v fds during the flood, over %v (baseline + max_handshakes + slack): slow clients are not capped", peak["process_open_fds"], limit)
	}
	evicted := s.metric(t, `rds_iam_proxy_connections_failed_total{engine="postgres",reason="evicted",upstream="pg"}`)
	refused := s.metric(t, `rds_iam_proxy_connections_failed_total{engine="postgres",reason="handshake_limit",upstream="pg"}`)
	// The first new client took a slow one's place; each freed its place
	// for the next as it logged in.
	if evicted < 1 || evicted+refused < 5000-defaultMaxHandshakes-float64(flood.failed.Load()) {
		t.Errorf("evicted %v (want at least one, for the first new client) and refused %v (want the flood past the cap)", evicted, refused)
	}
	if !strings.Contains(s.logs.String(), "too many connections logging in at once") {
		t.Error("no warning in the log about the full handshake cap")
	}

	flood.close()
	settled(t, s.admin, base, afterSlack, 20*time.Second)
	if res := open.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read(); res.Err != nil {
		t.Fatalf("the open session after the flood: %v", res.Err)
	}
}

// TestLimitsLengthHeaderOnly: 3,000 clients send a startup message's
// length and nothing more (Postgres), or a packet header (MySQL). The proxy
// holds at most max_handshakes of them, refuses the rest, a real client
// logs in meanwhile, and it cuts every one of them at the first-packet
// timeout, though they stay connected: its fds and goroutines come back
// to the baseline while the clients still hold their sockets. Budget:
// about 15 s per engine.
func TestLimitsLengthHeaderOnly(t *testing.T) {
	w.enter(t)
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			port := freePort(t)
			up, header := pgUpstream("pg", "127.0.0.1:"+port), []byte{0, 0, 0, 64}
			if engine == "mysql" {
				up, header = myUpstream("my", "127.0.0.1:"+port), []byte{64, 0, 0, 1}
			}
			s := startSidecar(t, upstreamsYAML("first_packet_timeout: 5s", up), "--log-level", "info")
			base := baseline(t, s.admin)
			sampler := startPeakSampler(s.admin, nil, "process_open_fds")
			start := time.Now()
			flood := startSlowFlood(t, "127.0.0.1:"+port, 3000, header, false)
			t.Logf("3000 headers sent in %v: %s", time.Since(start).Round(time.Millisecond), describe(flood))
			time.Sleep(2500 * time.Millisecond)
			if err := realLogin(t, engine, port); err != nil {
				t.Fatalf("a real client during the flood: %v", err)
			}
			// Cut at the first-packet timeout (5 s) though still connected.
			settled(t, s.admin, base, afterSlack, 15*time.Second)
			peak := sampler.halt()
			if limit := base["process_open_fds"] + defaultMaxHandshakes + floodFDSlack; peak["process_open_fds"] > limit {
				t.Errorf("the proxy held %v fds, over %v: header-only clients are not capped", peak["process_open_fds"], limit)
			}
			t.Logf("baseline %v, peak %v, back to baseline %v after the flood began", base, peak, time.Since(start).Round(time.Millisecond))
			flood.close()
		})
	}
}

// realLogin logs in through the proxy on port with the engine's Go driver
// and runs a query.
func realLogin(t *testing.T, engine, port string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if engine == "mysql" {
		var one int
		db := mysqlDB(t, port, iamUser)
		defer db.Close()
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			return fmt.Errorf("go-sql-driver: %d, %w", one, err)
		}
		return nil
	}
	c, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err
}

// TestLimitsMySQLSlowClients: 5,000 clients connect to the real binary's
// MySQL listener and send their answer to the greeting a byte a second.
// The proxy dials the database as each client connects (to show it the
// server's greeting), so without a cap they would use up the database's
// max_connections (200 here) for everyone. With the default settings the
// database sees at most max_unanswered_greetings (mysql.DefaultMaxUnansweredGreetings) connections for
// them, an open session keeps working, new clients (go-sql-driver) log in,
// and when the slow clients are gone the fds and goroutines are back at
// their baseline. Budget: about 35 s.
func TestLimitsMySQLSlowClients(t *testing.T) {
	w.enter(t)
	myPort := freePort(t)
	s := startSidecar(t, upstreamsYAML("", myUpstream("my", "127.0.0.1:"+myPort)), "--log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	open := mysqlDB(t, myPort, iamUser)
	open.SetMaxOpenConns(1)
	var one int
	if err := open.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	dbConns := func() (string, float64) {
		var name string
		var n float64
		w.My.QueryRow(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &n)
		return "database_connections", n
	}
	_, dbBase := dbConns()
	base := baseline(t, s.admin)
	sampler := startPeakSampler(s.admin, dbConns, "process_open_fds", "go_goroutines")

	flood := startSlowFlood(t, "127.0.0.1:"+myPort, 5000, mysqlResponsePacket(), true)
	t.Logf("flood of 5000 dialed: %s", describe(flood))
	time.Sleep(2500 * time.Millisecond)
	for i := range 4 {
		if err := open.QueryRowContext(ctx, "SELECT 41 + 1").Scan(&one); err != nil || one != 42 {
			t.Fatalf("the open session during the flood: %d %v", one, err)
		}
		start := time.Now()
		var user string
		db := mysqlDB(t, myPort, iamUser)
		err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user)
		db.Close()
		if err != nil || user != iamUser+"@%" {
			t.Fatalf("new client %d during the flood (%s): %q %v", i, describe(flood), user, err)
		}
		t.Logf("new client %d logged in during the flood in %v", i, time.Since(start).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
	}
	peak := sampler.halt()
	t.Logf("flood: %s; baseline %v and %v database connections, peak %v", describe(flood), base, dbBase, peak)
	// The cap, the open session, a new client's, and connections being
	// abandoned or closing.
	if limit := dbBase + mysql.DefaultMaxUnansweredGreetings + 20; peak["database_connections"] > limit {
		t.Errorf("the database had %v connections during the flood, over %v: slow clients' upstream connections are not capped", peak["database_connections"], limit)
	}
	if limit := base["process_open_fds"] + defaultMaxHandshakes + mysql.DefaultMaxUnansweredGreetings + floodFDSlack; peak["process_open_fds"] > limit {
		t.Errorf("the proxy held %v fds during the flood, over %v: slow clients are not capped", peak["process_open_fds"], limit)
	}
	if evicted := s.metric(t, `rds_iam_proxy_connections_failed_total{engine="mysql",reason="evicted",upstream="my"}`); evicted < 1 {
		t.Errorf("evicted %v, want at least one for the first new client", evicted)
	}

	flood.close()
	settled(t, s.admin, base, afterSlack, 20*time.Second)
	if err := open.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("the open session after the flood: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool { _, n := dbConns(); return n <= dbBase+2 })
}
