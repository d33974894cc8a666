// Command connrate measures the connection rate (pgbench -S -C: a new
// connection per transaction) direct over TLS, through the proxy, and
// through the proxy with pre-warmed upstream connections (--prewarm), with
// the login-rate guard off and at its default, one run each. PostgreSQL
// serves TLS for an RDS-like name and trusts logins (as in bench/pgbench),
// so the figures are the proxy's own cost.
//
//	go run ./bench/connrate [-duration 10s] [-clients 8] [-prewarm 4]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/bench/internal/pgbenchrun"
	"github.com/rds-iam-proxy/rds-iam-proxy/bench/internal/tlspg"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

const endpoint = "bench-db.c0ffee123456.us-east-1.rds.amazonaws.com"

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each run")
	clients := flag.Int("clients", 8, "pgbench clients")
	prewarm := flag.Int("prewarm", 4, "ready upstream connections for the pre-warmed runs")
	flag.Parse()
	if err := run(*duration, *clients, *prewarm); err != nil {
		fmt.Fprintln(os.Stderr, "connrate:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, clients, prewarm int) error {
	ctx := context.Background()
	srv, err := tlspg.Start(ctx, endpoint, "rds-iam-proxy-connrate-")
	if err != nil {
		return err
	}
	defer srv.Stop()
	pg, caFile := srv.PG, srv.CAFile
	if out, err := exec.Command(pg.BinPath("pgbench"), "-i", "-q", "-s", "1", "-h", pg.SocketDir, "-p", strconv.Itoa(pg.Port), "-U", "postgres", "postgres").CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	// Static keys: the proxy signs a real token per login; the server
	// trusts, so the figures are the proxy's cost, not an IAM check's.
	srv.UseStaticKeys()

	startProxy := func(rate, warm int) (string, func(), error) {
		pc := srv.ProxyConfig(endpoint)
		pc.LoginRate, pc.Prewarm = rate, warm
		r, err := launch.Start(ctx, pc, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return "", nil, err
		}
		time.Sleep(time.Second) // the ready connections are made
		return fmt.Sprintf("host=127.0.0.1 port=%s sslmode=disable gssencmode=disable user=postgres dbname=postgres", r.Port()),
			func() { r.Shutdown(ctx) }, nil
	}
	direct := fmt.Sprintf("host=%s hostaddr=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s gssencmode=disable user=postgres dbname=postgres", endpoint, pg.Port, caFile)
	def := config.DefaultServing().LoginRate
	sides := []struct {
		name       string
		rate, warm int
	}{
		{"proxy, login_rate 0 (guard off)", 0, 0},
		{fmt.Sprintf("proxy, login_rate %d (default)", def), def, 0},
		{fmt.Sprintf("proxy --prewarm %d, login_rate 0", prewarm), 0, prewarm},
		{fmt.Sprintf("proxy --prewarm %d, login_rate %d", prewarm, def), def, prewarm},
	}
	fmt.Printf("pgbench -n -S -C -c %d -j 2 -T %d, PostgreSQL %s with TLS, one run each\n\n", clients, int(duration.Seconds()), pg.Version)
	d, err := pgbench(pg, duration, clients, direct)
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %10s %8s\n", "side", "conn/s", "ratio")
	fmt.Printf("%-40s %10.0f %8.2f\n", "direct TLS (verify-full)", d, 1.0)
	for _, s := range sides {
		conninfo, stop, err := startProxy(s.rate, s.warm)
		if err != nil {
			return err
		}
		p, err := pgbench(pg, duration, clients, conninfo)
		stop()
		if err != nil {
			return err
		}
		fmt.Printf("%-40s %10.0f %8.2f\n", s.name, p, p/d)
	}
	return nil
}

func pgbench(pg *localpg.Server, d time.Duration, clients int, conninfo string) (float64, error) {
	r, err := pgbenchrun.Run(context.Background(), pg, []string{"-S", "-C", "-c", strconv.Itoa(clients), "-j", "2"}, d, conninfo)
	return r.TPS, err
}
