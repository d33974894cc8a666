// Command suite measures the proxy in one run and prints one table: what
// issue 15 sets targets for, each figure beside direct (and PgBouncer, the
// anchor, when it is installed) from the same run on the same servers.
//
//	go run ./bench/suite [-duration 10s] [-idle 1000,5000] [-idle-query] [-storm 1000] [-only tps,latency,connect,idle,storm,mysql]
//	                     [-proxy-flags '--session-reuse --prewarm 4'] [-gomaxprocs N] [-pgbouncer=false] [-socat=false] [-reuse=false]
//
// It starts a PostgreSQL 15 and a MariaDB with TLS (internal/loadtest/
// loadgen/targets), emulated AWS (STS, IMDSv2 with an instance profile the
// proxy takes its credentials from) with RDS IAM fronts, and the proxy
// binary built from this module as a child process, so that its CPU time,
// memory and files in /proc are its own. The parts:
//
//   - tps: pgbench -S, 8 clients: direct over verify-full TLS, through the
//     proxy, through PgBouncer (session mode, verify-full upstream). The
//     proxy's CPU (utime+stime over its runs) divided by their
//     transactions is the "proxy CPU" row, beside PgBouncer's own,
//     measured the same way: what a C pooler spends on this machine.
//   - latency: pgbench -S, 1 client, average latency.
//   - socat (rows, not a part): tps and latency again through socat, a TCP
//     forwarder, in the proxy's place (pgbench's TLS passes through it), when
//     it is installed: what one more process on the path costs on this
//     machine, whatever it does.
//   - connect: pgbench -S -C, 8 clients: a new connection per transaction,
//     twice. First with PostgreSQL trusting loopback logins, as for tps and
//     latency, so the proxy's token costs it a signature and nothing else:
//     the proxy's own cost. Then the row, as RDS has it: every
//     login's token verified by the server, here the emulated RDS front
//     before the same PostgreSQL (direct: pgbench sends a token as its
//     password over verify-full TLS; PgBouncer cannot, so no column).
//   - reuse (a column, not a part): the same runs through a second proxy
//     child with --session-reuse added to -proxy-flags (-reuse=false: none).
//   - idle: N connections held open through the proxy (logged in, then
//     idle): RSS and open files of the proxy per connection, measured as
//     the change from before they opened. Up to 1,000 against the real
//     PostgreSQL; more against a stub upstream in this process that logs
//     anyone in over TLS and idles. With -idle-query each connection runs
//     one query first, as a real idle session has: its relay goroutines
//     have then read and written TLS records, and their stacks grew.
//   - storm: N pgx clients at once (one round), connect to first answer
//     (ReadyForQuery) p50/p99 and hung count, direct (a password user over
//     TLS: SCRAM), direct with IAM-verified logins (a token over verify-full
//     TLS to the emulated front, as RDS has them) and through the proxy
//     (which signs a token and logs in through the same front), also with
//     the guard off and, in a fresh child, with --session-reuse (a client
//     waiting for its login's turn takes a session another client left);
//     then the same with go-sql-driver clients against MySQL: direct (the
//     password user), through the proxy, and through the fresh reuse
//     child after one client (whose key the next clients wait for).
//   - mysql: point selects by primary key (go-sql-driver/mysql), every side
//     through the emulated RDS for MySQL front: direct with a token of its
//     own over verify-full TLS, and through the proxy. Throughput at 8
//     clients with the proxy's CPU per select, 1-client latency, and new
//     connections (connect, select, COM_QUIT) at 8 clients with the proxy's
//     CPU per connection, there with the reuse child too. The client and
//     the front run in this process on every side.
//
// Each throughput and latency figure runs direct, proxy, [pgbouncer,
// pgbouncer,] proxy, direct and averages the pairs, so drift weighs on each
// side alike. Figures from a shared machine are noisy: compare ratios
// within one run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration, connectDuration time.Duration
	clients                   int
	idle                      []int
	idleReal                  int
	idleQuery                 bool
	storm                     int
	only                      map[string]bool
	proxyFlags                []string
	gomaxprocs                int
	pgbouncer                 bool
	socat                     bool
	scale                     int
	reuse                     bool
}

var parts = []string{"tps", "latency", "connect", "idle", "storm", "mysql"}

func main() {
	var o options
	var idle, only, proxyFlags string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each throughput and latency run (each runs twice per side)")
	flag.DurationVar(&o.connectDuration, "connect-duration", 10*time.Second, "length of each connection-rate run (each runs twice per side)")
	flag.IntVar(&o.clients, "clients", 8, "clients for the throughput and connection-rate runs")
	flag.StringVar(&idle, "idle", "1000,5000", "idle connection counts, comma-separated")
	flag.IntVar(&o.idleReal, "idle-real", 1000, "idle counts up to this go to the real PostgreSQL; larger ones to the stub upstream")
	flag.BoolVar(&o.idleQuery, "idle-query", false, "each idle connection runs one query before it idles (its relay has then read and written TLS records once)")
	flag.IntVar(&o.storm, "storm", 1000, "clients in the storm")
	flag.StringVar(&only, "only", strings.Join(parts, ","), "parts to run, comma-separated: "+strings.Join(parts, ","))
	flag.StringVar(&proxyFlags, "proxy-flags", "", "extra flags for the proxy, space-separated (e.g. '--session-reuse')")
	flag.IntVar(&o.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS of the proxy child (0: the Go default)")
	flag.BoolVar(&o.pgbouncer, "pgbouncer", true, "run PgBouncer as the anchor when it is installed")
	flag.BoolVar(&o.socat, "socat", true, "run socat, a TCP forwarder, in the proxy's place as an anchor for throughput and latency when it is installed")
	flag.IntVar(&o.scale, "scale", 10, "pgbench scale factor")
	flag.BoolVar(&o.reuse, "reuse", true, "add a side through a second proxy with --session-reuse (tps, latency, connect, mysql), unless -proxy-flags has it")
	flag.Parse()
	o.only = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.only[p] = true
		}
	}
	for p := range o.only {
		if !strings.Contains(","+strings.Join(parts, ",")+",", ","+p+",") {
			fmt.Fprintf(os.Stderr, "suite: unknown part %q (parts: %s)\n", p, strings.Join(parts, ","))
			os.Exit(2)
		}
	}
	for _, s := range strings.Split(idle, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "suite: bad -idle count %q\n", s)
			os.Exit(2)
		}
		o.idle = append(o.idle, n)
	}
	o.proxyFlags = strings.Fields(proxyFlags)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}
