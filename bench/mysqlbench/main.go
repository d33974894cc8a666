// Command mysqlbench measures what the proxy costs for MySQL, against a
// direct connection in the same run: point-select throughput (8 clients,
// like sysbench oltp_point_select), connection rate and one client's
// latency.
//
//	go run ./bench/mysqlbench [-duration 10s] [-clients 8] [-session-reuse]
//
// Both sides talk to the same emulated RDS for MySQL front before the same
// MariaDB. "Direct" is what an application does without the proxy: it
// builds an IAM token per connection with the same credentials and logs in
// with mysql_clear_password over verify-full TLS. "Via proxy" is the same
// client in plaintext to the proxy, which does that for it. The front's
// hop is on both sides, so the ratio measures the proxy (a token-less
// MariaDB login cannot take a token: MariaDB has no IAM plugin). sysbench
// and mysqlslap cannot send a fresh token per connection, so the load is
// made here with go-sql-driver/mysql on both sides.
//
// Each measurement runs direct, proxy, proxy, direct and averages the pairs.
package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

const rows = 10000

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each run (each runs twice per side)")
	clients := flag.Int("clients", 8, "concurrent clients for the throughput and connection runs")
	reuse := flag.Bool("session-reuse", false, "run the proxy with session reuse on")
	flag.Parse()
	if err := run(*duration, *clients, *reuse); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, clients int, reuse bool) error {
	ctx := context.Background()
	var fill []string
	for i := 0; i < rows; i += 1000 {
		stmt := "INSERT INTO sbtest1 (k, c, pad) VALUES "
		for j := range 1000 {
			if j > 0 {
				stmt += ","
			}
			stmt += fmt.Sprintf("(%d, REPEAT('c', 120), REPEAT('p', 60))", i+j)
		}
		fill = append(fill, stmt)
	}
	stack, err := iamstack.Start(ctx, iamstack.Options{
		Role: "bench", AllowUsers: []string{"bench_user"}, NoPostgres: true,
		MySQL: &iamstack.MySQLOptions{
			AppDB:    "bench",
			AppSQL:   append([]string{"CREATE TABLE sbtest1 (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))"}, fill...),
			IAMUsers: []string{"bench_user"},
			Grants:   []string{"GRANT SELECT ON bench.* TO 'bench_user'@'%'"},
		},
	})
	if err != nil {
		return err
	}
	defer stack.Close()
	stack.UseInProcess()
	front := stack.MyFront
	fmt.Printf("MariaDB %s behind the emulated RDS for MySQL front; %d rows\n", stack.My.Version, rows)

	pc := launch.NewConfig(config.MySQL, stack.MySQLEndpoint())
	pc.DialAddress, pc.Listen, pc.CABundle = front.Addr(), "127.0.0.1:0", stack.CAFile
	pc.SessionReuse = reuse
	r, err := launch.Start(ctx, pc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer r.Shutdown(ctx)

	tokens, err := authtoken.New(ctx, authtoken.Options{})
	if err != nil {
		return err
	}
	direct := mysql.NewConfig()
	direct.User, direct.Net, direct.Addr, direct.DBName = "bench_user", "tcp", front.Addr(), "bench"
	direct.AllowCleartextPasswords = true
	direct.TLS = &tls.Config{RootCAs: stack.AWS.CA.Pool(), ServerName: front.Endpoint(), MinVersion: tls.VersionTLS12}
	if err := direct.Apply(mysql.BeforeConnect(func(ctx context.Context, c *mysql.Config) error {
		tok, err := tokens.Token(ctx, front.Endpoint(), front.Port(), "us-east-1", c.User)
		c.Passwd = tok
		return err
	})); err != nil {
		return err
	}
	proxied := mysql.NewConfig()
	proxied.User, proxied.Net, proxied.Addr, proxied.DBName = "bench_user", "tcp", "127.0.0.1:"+r.Port(), "bench"

	type measure struct {
		name    string
		clients int
		f       func(*mysql.Config, int, time.Duration) (float64, error)
		latency bool
	}
	runs := []measure{
		{fmt.Sprintf("point select, %d clients (qps)", clients), clients, pointSelects, false},
		{fmt.Sprintf("connect + close, %d clients (per s)", clients), clients, connects, false},
		{"point select, 1 client (latency ms)", 1, pointSelects, true},
	}
	fmt.Printf("\n%-48s %12s %12s %8s\n", "run", "direct TLS", "via proxy", "ratio")
	for _, m := range runs {
		var d, p float64
		for i, cfg := range []*mysql.Config{direct, proxied, proxied, direct} {
			rate, err := m.f(cfg, m.clients, duration)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if i == 1 || i == 2 {
				p += rate / 2
			} else {
				d += rate / 2
			}
		}
		if m.latency {
			fmt.Printf("%-48s %12.3f %12.3f %8.2f\n", m.name, 1000/d, 1000/p, d/p)
		} else {
			fmt.Printf("%-48s %12.0f %12.0f %8.2f\n", m.name, d, p, p/d)
		}
	}
	fmt.Println("\nratio = via proxy / direct (throughput: higher is better; latency: lower is better)")
	return nil
}

// pointSelects runs clients connections doing primary-key selects for d
// and returns queries per second.
func pointSelects(cfg *mysql.Config, clients int, d time.Duration) (float64, error) {
	db, err := open(cfg)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	return load(clients, d, func(ctx context.Context) error {
		var c string
		return db.QueryRowContext(ctx, "SELECT c FROM sbtest1 WHERE id = ?", rand.IntN(rows)+1).Scan(&c)
	})
}

// connects opens, uses and closes a connection per operation.
func connects(cfg *mysql.Config, clients int, d time.Duration) (float64, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return 0, err
	}
	return load(clients, d, func(ctx context.Context) error {
		conn, err := c.Connect(ctx)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

func open(cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// load runs op from clients goroutines for d and returns operations per
// second; the first error stops the run.
func load(clients int, d time.Duration, op func(context.Context) error) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, clients)
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := op(context.Background()); err != nil {
					errs[i] = err
					cancel()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(errs, func(a, b int) bool { return errs[a] != nil && errs[b] == nil })
	if errs[0] != nil {
		return 0, errs[0]
	}
	return float64(n.Load()) / elapsed.Seconds(), nil
}
