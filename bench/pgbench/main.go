// Command pgbench measures what the proxy costs, against a direct TLS
// connection to the same PostgreSQL in the same run: read-only throughput
// (pgbench -S, 8 clients), connection rate (pgbench -C) and one client's
// latency. PostgreSQL itself serves TLS with a certificate for an RDS-like
// name and trusts logins, so the ratio measures the proxy alone (token
// signing, handshake, relay) and not the emulator's extra hop.
//
//	go run ./bench/pgbench [-duration 10s] [-clients 8]
//
// Each measurement runs direct, proxy, proxy, direct and averages the pairs.
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
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

const endpoint = "bench-db.c0ffee123456.us-east-1.rds.amazonaws.com"

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each throughput and latency run (each runs twice per side)")
	connDuration := flag.Duration("connect-duration", 10*time.Second, "length of each connection-rate run (each runs twice per side)")
	clients := flag.Int("clients", 8, "pgbench clients for the throughput and connection runs")
	scale := flag.Int("scale", 10, "pgbench scale factor")
	reuse := flag.Bool("session-reuse", false, "run the proxy with session reuse on (session_reuse)")
	flag.Parse()
	if err := run(*duration, *connDuration, *clients, *scale, *reuse); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	tps, latencyMS float64
}

func run(duration, connDuration time.Duration, clients, scale int, reuse bool) error {
	ctx := context.Background()
	srv, err := tlspg.Start(ctx, endpoint, "rds-iam-proxy-bench-")
	if err != nil {
		return err
	}
	defer srv.Stop()
	pg, caFile := srv.PG, srv.CAFile
	fmt.Printf("PostgreSQL %s on %s with TLS; pgbench scale %d\n", pg.Version, pg.Addr(), scale)
	if out, err := exec.Command(pg.BinPath("pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), "-h", pg.SocketDir, "-p", strconv.Itoa(pg.Port), "-U", "postgres", "postgres").CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	// pgbench -i has vacuumed; flush its writes so that they do not slow whichever side
	// runs first.
	if err := pg.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}

	// The proxy signs a real token per connection with static keys; the
	// server does not check it (trust), which is the point.
	srv.UseStaticKeys()
	pc := srv.ProxyConfig(endpoint)
	pc.SessionReuse = reuse
	r, err := launch.Start(ctx, pc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer r.Shutdown(ctx)

	// gssencmode=disable on both: libpq otherwise probes for Kerberos
	// credentials on every connection, which no sidecar client has.
	direct := fmt.Sprintf("host=%s hostaddr=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s gssencmode=disable user=postgres dbname=postgres", endpoint, pg.Port, caFile)
	proxied := fmt.Sprintf("host=127.0.0.1 port=%s sslmode=disable gssencmode=disable user=postgres dbname=postgres", r.Port())

	type run struct {
		name string
		args []string
		d    time.Duration
	}
	runs := []run{
		{fmt.Sprintf("select-only, %d clients (tps)", clients), []string{"-S", "-c", strconv.Itoa(clients), "-j", "2"}, duration},
		{fmt.Sprintf("new connection per transaction, %d clients (tps)", clients), []string{"-S", "-C", "-c", strconv.Itoa(clients), "-j", "2"}, connDuration},
		{"select-only, 1 client (latency ms)", []string{"-S", "-c", "1"}, duration},
	}
	fmt.Printf("\n%-48s %12s %12s %8s\n", "run", "direct TLS", "via proxy", "ratio")
	for i, rn := range runs {
		// Direct, proxy, proxy, direct: drift in the machine's state
		// (caches, autovacuum, a neighbour) weighs on both sides alike.
		var d, p result
		for _, conninfo := range []string{direct, proxied, proxied, direct} {
			r, err := pgbench(pg, rn.args, rn.d, conninfo)
			if err != nil {
				return err
			}
			sum := &d
			if conninfo == proxied {
				sum = &p
			}
			sum.tps += r.tps / 2
			sum.latencyMS += r.latencyMS / 2
		}
		if i == 2 {
			fmt.Printf("%-48s %12.3f %12.3f %8.2f\n", rn.name, d.latencyMS, p.latencyMS, p.latencyMS/d.latencyMS)
		} else {
			fmt.Printf("%-48s %12.0f %12.0f %8.2f\n", rn.name, d.tps, p.tps, p.tps/d.tps)
		}
	}
	fmt.Println("\nratio = via proxy / direct (throughput: higher is better; latency: lower is better)")
	return nil
}

func pgbench(pg *localpg.Server, args []string, d time.Duration, conninfo string) (result, error) {
	r, err := pgbenchrun.Run(context.Background(), pg, args, d, conninfo)
	return result{tps: r.TPS, latencyMS: r.LatencyMS}, err
}
