package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"math/rand/v2"
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

// mysql compares point selects at -clients clients, direct (a token of
// its own, verify-full TLS to the emulated front) and through the proxy
// (plaintext to it; it logs in to the same front). The front's hop is on
// both sides, so the ratio is the proxy's.
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
	direct := mysql.NewConfig()
	direct.User, direct.Net, direct.Addr, direct.DBName = targets.IAMUser, "tcp", front.Addr(), targets.Database
	direct.AllowCleartextPasswords = true
	direct.TLS = &tls.Config{RootCAs: w.aws.CA.Pool(), ServerName: front.Endpoint(), MinVersion: tls.VersionTLS12}
	if err := direct.Apply(mysql.BeforeConnect(func(ctx context.Context, c *mysql.Config) error {
		tok, err := tokens.Token(ctx, front.Endpoint(), front.Port(), w.aws.AWS.Region(), c.User)
		c.Passwd = tok
		return err
	})); err != nil {
		return err
	}
	proxied := mysql.NewConfig()
	proxied.User, proxied.Net, proxied.Addr, proxied.DBName = targets.IAMUser, "tcp", w.listen(w.myPort), targets.Database
	var d, p float64
	var cpu time.Duration
	var queries int64
	for i, cfg := range []*mysql.Config{direct, proxied, proxied, direct} {
		before, err := w.proxy.cpu()
		if err != nil {
			return err
		}
		qps, n, err := pointSelects(cfg, w.o.clients, w.o.duration)
		if err != nil {
			return err
		}
		after, err := w.proxy.cpu()
		if err != nil {
			return err
		}
		if i == 1 || i == 2 {
			p += qps / 2
			cpu += after - before
			queries += n
		} else {
			d += qps / 2
		}
	}
	w.table.pair(fmt.Sprintf("MySQL point selects, %d clients (qps)", w.o.clients), d, p, "%.0f", true, ">= 0.90x direct")
	if queries > 0 {
		// Each select is three commands (prepare, execute, close): the
		// driver prepares per query unless told to interpolate.
		w.table.single("proxy CPU per MySQL point select (µs)", fmt.Sprintf("%.1f", float64(cpu.Microseconds())/float64(queries)), "")
	}
	return nil
}

// pointSelects runs clients connections doing primary-key selects for d
// and returns queries per second and their number; the first error
// stops it.
func pointSelects(cfg *mysql.Config, clients int, d time.Duration) (float64, int64, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return 0, 0, err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
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
