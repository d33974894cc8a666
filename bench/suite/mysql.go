package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
)

// mysqlRows is the size of the point-select table (sysbench's sbtest1).
const mysqlRows = 10000

// mysql compares, with -clients clients, point selects on connections
// kept open and on a new connection each (connect, select, COM_QUIT), and
// the 1-client latency of a point select, direct (a token of its own,
// verify-full TLS to the emulated front) and through the proxy (plaintext
// to it; it logs in to the same front), and for the new connections
// through the reuse child too. The front's hop is on every side, so the
// ratios are the proxy's. Direct signs one token for all its connections,
// as the PostgreSQL IAM-verified row does (RDS takes a token for 15
// minutes); the proxy signs one per login.
func (w *world) mysql(ctx context.Context) error {
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + targets.Database + ".sbtest1 (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))"}
	for i := 0; i < mysqlRows; i += 1000 {
		var vals []string
		for j := range 1000 {
			vals = append(vals, fmt.Sprintf("(%d, REPEAT('c', 120), REPEAT('p', 60))", i+j))
		}
		stmts = append(stmts, "INSERT INTO "+targets.Database+".sbtest1 (k, c, pad) VALUES "+strings.Join(vals, ","))
	}
	if err := w.set.My.Exec(ctx, stmts...); err != nil {
		return err
	}
	front := w.set.MyFront
	tokens, err := authtoken.New(ctx, authtoken.Options{})
	if err != nil {
		return err
	}
	tok, err := tokens.Token(ctx, front.Endpoint(), front.Port(), w.aws.AWS.Region(), targets.IAMUser)
	if err != nil {
		return err
	}
	direct := mysql.NewConfig()
	direct.User, direct.Passwd, direct.Net, direct.Addr, direct.DBName = targets.IAMUser, tok, "tcp", front.Addr(), targets.Database
	direct.AllowCleartextPasswords = true
	direct.TLS = &tls.Config{RootCAs: w.aws.CA.Pool(), ServerName: front.Endpoint(), MinVersion: tls.VersionTLS12}
	through := func(port int) *mysql.Config {
		c := mysql.NewConfig()
		c.User, c.Net, c.Addr, c.DBName = targets.IAMUser, "tcp", w.listen(port), targets.Database
		return c
	}
	sides := []mySide{{"direct", direct, nil}, {"proxy", through(w.myPort), w.proxy}}
	withReuse := sides
	if w.reuseProxy != nil {
		withReuse = append(slices.Clone(sides), mySide{"reuse", through(w.reuseMyPort), w.reuseProxy})
	}
	// MySQL has no PgBouncer to anchor the figures; a TCP forwarder in the
	// proxy's place shows what one more process on the path costs here.
	if w.o.socat {
		addr, stop, err := startSocat(ctx, front.Addr())
		if err != nil {
			return err
		}
		if stop != nil {
			defer stop()
			hop := *direct
			hop.Addr = addr
			sides = append(sides, mySide{"socat", &hop, nil})
		}
	}
	socatRow := func(name string, r map[string]pgbenchResult, f func(pgbenchResult) float64, format string) {
		if s, ok := r["socat"]; ok {
			w.table.pair(name, f(r["direct"]), f(s), format, true, "")
		}
	}

	r, err := mySelects(sides, w.o.clients, w.o.duration, false)
	if err != nil {
		return err
	}
	w.table.compare(fmt.Sprintf("MySQL point selects, %d clients (qps)", w.o.clients), r.pgbench(), func(p pgbenchResult) float64 { return p.tps }, "%.0f", true, ">= 0.90x direct")
	// Each select is three commands (prepare, execute, close): the driver
	// prepares per query unless told to interpolate.
	w.table.single("proxy CPU per MySQL point select (µs)", r.cpuPer("proxy", "%.1f"), "")
	socatRow("same, through socat (a TCP forwarder) in the proxy's place (qps)", r.pgbench(), func(p pgbenchResult) float64 { return p.tps }, "%.0f")

	r, err = mySelects(sides, 1, w.o.duration, false)
	if err != nil {
		return err
	}
	lat := r.pgbench()
	for k, v := range lat {
		v.latencyMS = 1000 / v.tps
		lat[k] = v
	}
	w.table.compare("MySQL point select, 1 client (latency ms)", lat, func(p pgbenchResult) float64 { return p.latencyMS }, "%.3f", false, "")
	socatRow("same, through socat in the proxy's place (latency ms)", lat, func(p pgbenchResult) float64 { return p.latencyMS }, "%.3f")

	r, err = mySelects(withReuse, w.o.clients, w.o.connectDuration, true) // socat has no part in logins
	if err != nil {
		return err
	}
	w.table.compare(fmt.Sprintf("MySQL new connection per point select, %d clients (per s)", w.o.clients), r.pgbench(), func(p pgbenchResult) float64 { return p.tps }, "%.0f", true, "")
	row := []string{"proxy CPU per new MySQL connection (µs)", "-", r.cpuPer("proxy", "%.0f"), "-", "-", "-", ""}
	if w.reuseProxy != nil {
		row = append(row, r.cpuPer("reuse", "%.0f"), "-")
	}
	w.table.rows = append(w.table.rows, row)
	return nil
}

// mySide is one way to the MySQL server, and the proxy child on it (nil:
// direct).
type mySide struct {
	name  string
	cfg   *mysql.Config
	child *proxyChild
}

// myResult is each side's mean rate and its selects, and the CPU its
// proxy child spent over its runs.
type myResult map[string]struct {
	qps float64
	n   int64
	cpu time.Duration
}

// pgbench is r in the shape the table's rows take.
func (r myResult) pgbench() map[string]pgbenchResult {
	m := map[string]pgbenchResult{}
	for k, v := range r {
		m[k] = pgbenchResult{tps: v.qps, txns: v.n}
	}
	return m
}

// cpuPer is side's proxy CPU per select, in µs, in format.
func (r myResult) cpuPer(side, format string) string {
	v, ok := r[side]
	if !ok || v.n == 0 {
		return "-"
	}
	return fmt.Sprintf(format, float64(v.cpu.Microseconds())/float64(v.n))
}

// mySelects runs point selects on every side in the order of sides, then
// back, and averages each side's two runs; fresh opens a new connection
// for each select.
func mySelects(sides []mySide, clients int, d time.Duration, fresh bool) (myResult, error) {
	order := append(slices.Clone(sides), sides...)
	slices.Reverse(order[len(sides):])
	r := myResult{}
	for _, s := range order {
		var before time.Duration
		if s.child != nil {
			var err error
			if before, err = s.child.cpu(); err != nil {
				return nil, err
			}
		}
		qps, n, err := pointSelects(s.cfg, clients, d, fresh)
		if err != nil {
			return nil, fmt.Errorf("mysql, %s: %w", s.name, err)
		}
		t := r[s.name]
		if s.child != nil {
			after, err := s.child.cpu()
			if err != nil {
				return nil, err
			}
			t.cpu += after - before
		}
		t.qps += qps / 2
		t.n += n
		r[s.name] = t
	}
	return r, nil
}

// pointSelects runs clients connections doing primary-key selects for d
// and returns queries per second and their number; the first error
// stops it. fresh opens a connection for each select and closes it after
// (COM_QUIT), as an application without a pool does.
func pointSelects(cfg *mysql.Config, clients int, d time.Duration, fresh bool) (float64, int64, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return 0, 0, err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	if fresh {
		db.SetMaxIdleConns(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var s string
				if err := db.QueryRowContext(context.Background(), "SELECT c FROM sbtest1 WHERE id = ?", rand.IntN(mysqlRows)+1).Scan(&s); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, 0, first
	}
	return float64(n.Load()) / time.Since(start).Seconds(), n.Load(), nil
}
