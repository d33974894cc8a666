package integration

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// faultRig is the real binary serving both engines twice: through a fault
// injector route each ("faulty"), and straight to the world's fronts
// ("clean"), so that a test can break one path and show that the other
// sessions of the same process go on. Faults then act on the injectors.
type faultRig struct {
	s      *sidecar
	pg, my *injector
	// ports of the four listeners
	pgPort, pgClean, myPort, myClean string
	base                             processCounts
}

// processCounts are the proxy process's goroutines and open fds, from
// /metrics.
type processCounts struct{ goroutines, fds float64 }

func (c processCounts) String() string {
	return fmt.Sprintf("%v goroutines, %v fds", c.goroutines, c.fds)
}

// faultYAML is the settings fault tests run with: short connect and TCP
// timeouts so that faults show within seconds (the defaults are 15 s and
// 30 s), and no CA refresh.
const faultYAML = "connect_timeout: 3s\nupstream_tcp_timeout: 3s\nca_refresh: -1s"

// startFaultRig starts the binary with faultYAML's settings, its faulty
// routes through injectors to the world's fronts, warms every route up
// with one session, and takes the process's baseline counts.
func startFaultRig(t *testing.T) *faultRig {
	t.Helper()
	pg, my := newInjector(t, "pg", w.front.Addr()), newInjector(t, "my", w.my.Addr())
	r := startFaultRigVia(t, worldPG(pg.addr()), worldMy(my.addr()))
	r.pg, r.my = pg, my
	return r
}

// route is an RDS endpoint (host:port, for tokens and TLS) and the
// address the proxy dials for it.
type route struct{ endpoint, dial string }

// worldPG and worldMy are the world's fronts, reached through dial.
func worldPG(dial string) route {
	return route{fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()), dial}
}

func worldMy(dial string) route {
	return route{fmt.Sprintf("%s:%d", w.my.Endpoint(), w.my.Port()), dial}
}

// startFaultRigVia is startFaultRig with the faulty routes going to pg
// and my.
func startFaultRigVia(t *testing.T, pg, my route) *faultRig {
	t.Helper()
	r := &faultRig{pgPort: freePort(t), pgClean: freePort(t), myPort: freePort(t), myClean: freePort(t)}
	cfg := upstreamsYAML(faultYAML,
		upstreamVia("pg", "postgres", "127.0.0.1:"+r.pgPort, pg),
		upstreamVia("pg-clean", "postgres", "127.0.0.1:"+r.pgClean, worldPG(w.front.Addr())),
		upstreamVia("my", "mysql", "127.0.0.1:"+r.myPort, my),
		upstreamVia("my-clean", "mysql", "127.0.0.1:"+r.myClean, worldMy(w.my.Addr())),
	)
	r.s = startSidecar(t, cfg)
	for _, e := range engines {
		for _, port := range []string{e.port(r), e.clean(r)} {
			if err := e.ping(t, port); err != nil {
				t.Fatalf("%s warm-up through %s: %v\n%s", e.name, port, err, r.s.logs)
			}
		}
	}
	r.base = r.settle(t, processCounts{}, 0)
	t.Logf("baseline: %s", r.base)
	return r
}

// upstreamVia is one upstream of the config file.
func upstreamVia(name, engine, listen string, r route) string {
	return fmt.Sprintf("  - name: %s\n    engine: %s\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
		name, engine, r.endpoint, r.dial, listen)
}

// counts reads the process's counts now.
func (r *faultRig) counts(t *testing.T) processCounts {
	return processCounts{goroutines: r.metric(t, "go_goroutines"), fds: r.metric(t, "process_open_fds")}
}

// noKeepAlive reads /metrics on a connection of its own each time: idle
// connections kept by a client pool (one more whenever two subtests ask
// at once) would count as the proxy's fds and goroutines.
var noKeepAlive = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// metric reads one sample from the proxy's /metrics (-1: none).
func (r *faultRig) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := noKeepAlive.Get("http://" + r.s.admin + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
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

// open is how many client connections of engine e the proxy holds.
func (r *faultRig) open(t *testing.T, e engine) float64 {
	return r.metric(t, fmt.Sprintf(`rds_iam_proxy_connections_open{engine="%s",upstream="%s"}`, e.engine, e.name))
}

// settle waits until the counts are steady (the same three reads in a
// row) and, when max is set, at or under it; limit bounds the wait (0:
// 10 s). It returns them.
func (r *faultRig) settle(t *testing.T, max processCounts, limit time.Duration) processCounts {
	t.Helper()
	if limit <= 0 {
		limit = 10 * time.Second
	}
	deadline := time.Now().Add(limit)
	var last processCounts
	same := 0
	for {
		c := r.counts(t)
		if c == last {
			same++
		} else {
			same, last = 0, c
		}
		ok := max == processCounts{} || (c.goroutines <= max.goroutines && c.fds <= max.fds)
		if same >= 2 && ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy's counts did not settle at the baseline (%s) within %s: %s\n%s", max, limit, c, r.s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backToBaseline checks that the proxy holds no more goroutines or fds
// than before the fault, once its sessions are over.
func (r *faultRig) backToBaseline(t *testing.T) {
	t.Helper()
	for _, e := range engines {
		waitFor(t, 15*time.Second, func() bool { return r.open(t, e) == 0 })
	}
	got := r.settle(t, r.base, 15*time.Second)
	t.Logf("after: %s (baseline %s)", got, r.base)
}

// engine is what fault tests do the same way on Postgres and MySQL, with
// each engine's own real clients.
type engine struct {
	name   string // upstream name in the rig and the metrics
	engine string // metrics label
	port   func(*faultRig) string
	clean  func(*faultRig) string
	inj    func(*faultRig) *injector
	// cli runs the engine's command-line client (psql, mariadb) with one
	// SQL statement: its stdout, stderr and error.
	cli func(t *testing.T, port, sql string) (string, string, error)
	// bigSQL selects rows rows of 1,000 bytes each; marker goes into the
	// statement so the server's session list can find it.
	bigSQL func(rows int, marker string) string
	// serverSessions counts the upstream sessions running a statement
	// that holds marker, in the server's own list.
	serverSessions func(t *testing.T, marker string) int
}

var engines = []engine{
	{
		name: "pg", engine: "postgres",
		port:  func(r *faultRig) string { return r.pgPort },
		clean: func(r *faultRig) string { return r.pgClean },
		inj:   func(r *faultRig) *injector { return r.pg },
		cli: func(t *testing.T, port, sql string) (string, string, error) {
			return psql(t, dsn(port, iamUser), "-c", sql)
		},
		bigSQL: func(rows int, marker string) string {
			return fmt.Sprintf("SELECT repeat('x', 1000) AS %s FROM generate_series(1, %d)", marker, rows)
		},
		serverSessions: func(t *testing.T, marker string) int {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgconn.Connect(ctx, w.pg.ConnString("postgres", appDB))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			res := c.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%' || $2 || '%'",
				[][]byte{[]byte(iamUser), []byte(marker)}, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			var n int
			fmt.Sscan(string(res.Rows[0][0]), &n)
			return n
		},
	},
	{
		name: "my", engine: "mysql",
		port:  func(r *faultRig) string { return r.myPort },
		clean: func(r *faultRig) string { return r.myClean },
		inj:   func(r *faultRig) *injector { return r.my },
		cli: func(t *testing.T, port, sql string) (string, string, error) {
			return mysqlCLI(t, port, iamUser, "-e", sql)
		},
		bigSQL: func(rows int, marker string) string {
			return fmt.Sprintf("SELECT REPEAT('x', 1000) AS %s FROM seq_1_to_%d", marker, rows)
		},
		serverSessions: func(t *testing.T, marker string) int {
			var n int
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.My.QueryRow(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE CONCAT('%', ?, '%')", iamUser, marker).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	},
}

// ping logs in through port and runs a query with the engine's driver.
func (e engine) ping(t *testing.T, port string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.engine == "postgres" {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err
	}
	db := faultDB(t, port)
	defer db.Close()
	return db.PingContext(ctx)
}

// faultDB is a go-sql-driver pool of at most one connection, without the
// driver's own retries hiding a failed session.
func faultDB(t *testing.T, port string) *sql.DB {
	db := mysqlDB(t, port, iamUser, func(c *mysql.Config) { c.Timeout = 30 * time.Second })
	db.SetMaxOpenConns(1)
	return db
}

// bigResult runs e.bigSQL through port with the engine's driver and
// returns how many rows and bytes of value arrived.
func (e engine) bigResult(t *testing.T, port string, rows int) (gotRows, gotBytes int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	q := e.bigSQL(rows, "big_result")
	if e.engine == "postgres" {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			return 0, 0, err
		}
		defer c.Close(ctx)
		rr := c.ExecParams(ctx, q, nil, nil, nil, nil)
		for rr.NextRow() {
			gotRows++
			gotBytes += len(rr.Values()[0])
		}
		_, err = rr.Close()
		return gotRows, gotBytes, err
	}
	db := faultDB(t, port)
	defer db.Close()
	rs, err := db.QueryContext(ctx, q)
	if err != nil {
		return 0, 0, err
	}
	defer rs.Close()
	for rs.Next() {
		var v sql.RawBytes
		if err := rs.Scan(&v); err != nil {
			return gotRows, gotBytes, err
		}
		gotRows++
		gotBytes += len(v)
	}
	return gotRows, gotBytes, rs.Err()
}

// recovery measures how long after a fault ends a new login and query
// through port work again; it fails the test past limit.
func (e engine) recovery(t *testing.T, port string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < limit {
		if last = e.ping(t, port); last == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no login within %s after the fault ended: %v", e.name, limit, last)
	return 0
}

// otherSessionsWork checks that the clean route of the same proxy serves
// a new login with the engine's command-line client.
func (e engine) otherSessionsWork(t *testing.T, r *faultRig) {
	t.Helper()
	out, stderr, err := e.cli(t, e.clean(r), "SELECT 41 + 1")
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("%s: another session of the same proxy failed during the fault: %v %q %s", e.name, err, out, stderr)
	}
}

// forEngine runs f for Postgres and MySQL at the same time (the faults
// mostly wait), then checks the process is back at its baseline.
func forEngine(t *testing.T, r *faultRig, f func(t *testing.T, e engine)) {
	t.Helper()
	t.Run("engines", func(t *testing.T) {
		for _, e := range engines {
			t.Run(e.name, func(t *testing.T) {
				t.Parallel()
				f(t, e)
			})
		}
	})
	if !t.Failed() {
		r.backToBaseline(t)
	}
}
