package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// world is what every part runs against.
type world struct {
	o       options
	aws     *emulator.Server
	set     *targets.Set
	proxy   *proxyChild
	bouncer *pgbouncer
	// socatPG is socat's loopback address forwarding to PostgreSQL (""
	// : not running), an anchor for the cost of any hop (startSocat).
	socatPG string
	// unixDir holds the main proxy child's unix socket for bench-pg.
	unixDir string
	stub    *stubPG
	// Proxy listeners: pgPort dials PostgreSQL itself, frontPort logs in
	// through the emulated front (the storm), myPort is MySQL's, stubPort
	// the stub's.
	pgPort, frontPort, myPort, stubPort int
	table                               *table
	// The built proxy binary and the run's directory, for children
	// started by a part (storm.go).
	bin, dir string
	// The session-reuse side (reuse.go): a second proxy child.
	reuseProxy                               *proxyChild
	reusePGPort, reuseFrontPort, reuseMyPort int
}

// benchEndpoint and stubEndpoint are the RDS-like names the proxy signs
// tokens for when it dials PostgreSQL and the stub directly; both
// certificates carry "localhost", which the proxy is told to verify.
const (
	benchEndpoint = "bench-db.c0ffee123456.us-east-1.rds.amazonaws.com"
	stubEndpoint  = "stub-db.c0ffee123456.us-east-1.rds.amazonaws.com"
)

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "rds-iam-proxy-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	room := max(o.storm, o.idleReal, 100)
	fmt.Println("starting PostgreSQL, MariaDB, emulated AWS, the stub upstream and the proxy...")
	w := &world{o: o, table: &table{}}
	if w.aws, err = emulator.StartServer(emulator.Options{}, ""); err != nil {
		return err
	}
	defer w.aws.Close()
	if w.set, err = targets.Start(ctx, targets.Options{AWS: w.aws, Clients: room}); err != nil {
		return err
	}
	defer w.set.Close()
	w.aws.AWS.AddRole("suite-app", w.set.ConnectPolicy())
	if err := w.aws.AWS.SetInstanceProfile("suite-app"); err != nil {
		return err
	}
	// The proxy (and the MySQL direct side's token) find credentials as
	// on EC2: the default chain, IMDSv2.
	w.aws.IsolateProcessEnv(dir)
	certPEM, keyPEM, err := w.aws.CA.ServerCertPEM("localhost")
	if err != nil {
		return err
	}
	if w.stub, err = startStubPG(certPEM, keyPEM); err != nil {
		return err
	}
	defer w.stub.close()
	if err := w.preparePG(ctx); err != nil {
		return err
	}

	bin, err := buildProxy(ctx, dir)
	if err != nil {
		return err
	}
	w.bin, w.dir = bin, dir
	ports, err := localsrv.FreePorts(5)
	if err != nil {
		return err
	}
	admin := "127.0.0.1:" + strconv.Itoa(ports[0])
	w.pgPort, w.frontPort, w.myPort, w.stubPort = ports[1], ports[2], ports[3], ports[4]
	// The same upstream on a unix socket too (bench-pg-unix): what the
	// client's hop costs over TCP loopback (the unix side, tps and latency).
	w.unixDir = filepath.Join(dir, "sock")
	if err := os.Mkdir(w.unixDir, 0o700); err != nil {
		return err
	}
	yaml := w.set.ProxyConfig(w.listen(w.frontPort), w.listen(w.myPort)) +
		fmt.Sprintf("  - name: bench-pg\n    engine: postgres\n    endpoint: %s:%d\n    dial_address: %s\n    tls_server_name: localhost\n    listen: %s\n",
			benchEndpoint, w.set.PG.Port, w.set.PG.Addr(), w.listen(w.pgPort)) +
		fmt.Sprintf("  - name: bench-pg-unix\n    engine: postgres\n    endpoint: %s:%d\n    dial_address: %s\n    tls_server_name: localhost\n    listen: unix:%s\n",
			benchEndpoint, w.set.PG.Port, w.set.PG.Addr(), w.unixDir) +
		fmt.Sprintf("  - name: stub-pg\n    engine: postgres\n    endpoint: %s:5432\n    dial_address: %s\n    tls_server_name: localhost\n    listen: %s\n",
			stubEndpoint, w.stub.addr(), w.listen(w.stubPort))
	if w.proxy, err = startProxyChild(ctx, bin, dir, yaml, admin, o.proxyFlags, o.gomaxprocs); err != nil {
		return err
	}
	defer w.proxy.stop()
	if err := w.startReuse(ctx, bin, dir); err != nil {
		return err
	}
	if w.reuseProxy != nil {
		defer w.reuseProxy.stop()
	}
	if o.pgbouncer && (o.only["tps"] || o.only["latency"] || o.only["connect"]) {
		if w.bouncer, err = startPgBouncer(ctx, w.set.PG.Port, w.set.CAFile, targets.IAMUser, targets.Database); err != nil {
			return err
		}
		defer w.bouncer.stop()
	}
	if o.socat && (o.only["tps"] || o.only["latency"]) {
		addr, stop, err := startSocat(ctx, w.set.PG.Addr())
		if err != nil {
			return err
		}
		if stop != nil {
			defer stop()
			w.socatPG = addr
		}
	}
	fmt.Printf("PostgreSQL %s, MariaDB %s; proxy flags %q, GOMAXPROCS of the proxy %s; PgBouncer %s\n\n",
		w.set.PG.Version, w.set.My.Version, o.proxyFlags, gomaxprocsText(o.gomaxprocs), map[bool]string{true: "on", false: "off"}[w.bouncer != nil])

	for _, p := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"tps", w.tps}, {"latency", w.latency}, {"connect", w.connect},
		{"idle", w.idle}, {"storm", w.storm}, {"mysql", w.mysql},
	} {
		if !o.only[p.name] {
			continue
		}
		start := time.Now()
		if err := p.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("  %s done in %s\n", p.name, time.Since(start).Round(time.Second))
	}
	fmt.Println()
	w.table.print(os.Stdout)
	return nil
}

func (w *world) listen(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func gomaxprocsText(n int) string {
	if n <= 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// preparePG fills the pgbench tables in the storm database, readable by
// the IAM user.
func (w *world) preparePG(ctx context.Context) error {
	pg := w.set.PG
	out, err := execOut(ctx, pg.BinPath("pgbench"), "-i", "-q", "-s", strconv.Itoa(w.o.scale), "-h", pg.SocketDir,
		"-p", strconv.Itoa(pg.Port), "-U", "postgres", targets.Database)
	if err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	if err := pg.ExecIn(ctx, targets.Database, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC"); err != nil {
		return err
	}
	// pgbench -i has vacuumed; flush its writes so that they do not slow
	// whichever side runs first.
	return pg.Exec(ctx, "CHECKPOINT")
}

// Conninfos: gssencmode=disable everywhere, since libpq otherwise probes
// for Kerberos credentials per connection, which no sidecar client has.
func (w *world) directConninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s gssencmode=disable user=%s dbname=%s",
		w.set.PG.Port, w.set.CAFile, targets.IAMUser, targets.Database)
}

func plainConninfo(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d sslmode=disable gssencmode=disable user=%s dbname=%s",
		port, targets.IAMUser, targets.Database)
}

// side is one way to the server in a comparison.
type side struct {
	name     string
	conninfo string
	isProxy  bool
}

// sides are the ways to compare; hop adds socat's, where it runs.
func (w *world) sides(hop bool) []side {
	s := []side{{"direct", w.directConninfo(), false}, {"proxy", plainConninfo(w.pgPort), true}}
	if w.bouncer != nil {
		s = append(s, side{"pgbouncer", plainConninfo(w.bouncer.port), false})
	}
	if hop && w.socatPG != "" {
		// libpq's verify-full checks 127.0.0.1, which the socat port is
		// on too: the TLS is direct's, forwarded.
		_, port, _ := strings.Cut(w.socatPG, ":")
		s = append(s, side{"socat", strings.Replace(w.directConninfo(), fmt.Sprintf("port=%d", w.set.PG.Port), "port="+port, 1), false})
	}
	if hop && w.unixDir != "" {
		// The proxy on its unix socket: not counted in the proxy's CPU
		// row, which is the TCP side's.
		s = append(s, side{"unix", fmt.Sprintf("host=%s port=%d gssencmode=disable user=%s dbname=%s", w.unixDir, w.set.PG.Port, targets.IAMUser, targets.Database), false})
	}
	return append(s, w.reuseSide()...)
}

// socatRow adds a row comparing direct with socat in the proxy's place,
// when it ran (see startSocat).
func (w *world) socatRow(name string, r map[string]pgbenchResult, f func(pgbenchResult) float64, format string) {
	w.sideRow("socat", name, r, f, format)
}

// sideRow adds a row comparing direct with the side named side, when it
// ran.
func (w *world) sideRow(side, name string, r map[string]pgbenchResult, f func(pgbenchResult) float64, format string) {
	if s, ok := r[side]; ok {
		w.table.pair(name, f(r["direct"]), f(s), format, true, "")
	}
}

// pgbenchAll runs args on every side in the order direct, proxy,
// [pgbouncer, pgbouncer,] proxy, direct and returns each side's mean,
// with the proxy's CPU over its runs.
func (w *world) pgbenchAll(ctx context.Context, args []string, d time.Duration, hop bool) (map[string]pgbenchResult, time.Duration, error) {
	ss := w.sides(hop)
	order := append([]side{}, ss...)
	for i := len(ss) - 1; i >= 0; i-- {
		order = append(order, ss[i])
	}
	sum := map[string]pgbenchResult{}
	var cpu time.Duration
	for _, s := range order {
		var before time.Duration
		if s.isProxy {
			var err error
			if before, err = w.proxy.cpu(); err != nil {
				return nil, 0, err
			}
		}
		bouncerBefore, err := w.bouncerCPU(s)
		if err != nil {
			return nil, 0, err
		}
		r, err := pgbench(ctx, w.set.PG, args, d, s.conninfo)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", s.name, err)
		}
		bouncerAfter, err := w.bouncerCPU(s)
		if err != nil {
			return nil, 0, err
		}
		r.cpu = bouncerAfter - bouncerBefore
		if s.isProxy {
			after, err := w.proxy.cpu()
			if err != nil {
				return nil, 0, err
			}
			cpu += after - before
		}
		t := sum[s.name]
		t.tps += r.tps / 2
		t.latencyMS += r.latencyMS / 2
		t.txns += r.txns
		t.cpu += r.cpu
		sum[s.name] = t
	}
	return sum, cpu, nil
}

func (w *world) tps(ctx context.Context) error {
	r, cpu, err := w.pgbenchAll(ctx, []string{"-S", "-c", strconv.Itoa(w.o.clients), "-j", "2"}, w.o.duration, true)
	if err != nil {
		return err
	}
	w.table.compare(fmt.Sprintf("PG select-only, %d clients (tps)", w.o.clients), r, func(p pgbenchResult) float64 { return p.tps }, "%.0f", true,
		">= 0.90x direct, >= 1.15x pgbouncer")
	w.socatRow("same, through socat (a TCP forwarder) in the proxy's place (tps)", r, func(p pgbenchResult) float64 { return p.tps }, "%.0f")
	w.sideRow("unix", "same, through the proxy's unix socket (`listen: unix:DIR`) (tps)", r, func(p pgbenchResult) float64 { return p.tps }, "%.0f")
	if n := r["proxy"].txns; n > 0 {
		proxyCPU := float64(cpu.Microseconds()) / float64(n)
		if b, ok := r["pgbouncer"]; ok && b.txns > 0 {
			w.table.anchored("proxy CPU per select-only transaction (µs)", proxyCPU, float64(b.cpu.Microseconds())/float64(b.txns), "%.1f", "<= 6")
		} else {
			w.table.single("proxy CPU per select-only transaction (µs)", fmt.Sprintf("%.1f", proxyCPU), "<= 6")
		}
	}
	return nil
}

// bouncerCPU is PgBouncer's CPU time so far when s is PgBouncer's side,
// else 0: the anchor for the proxy's CPU per transaction, measured the
// same way (utime+stime of its one process over its runs).
func (w *world) bouncerCPU(s side) (time.Duration, error) {
	if s.name != "pgbouncer" || w.bouncer == nil {
		return 0, nil
	}
	return procCPU(w.bouncer.child.Pid())
}

func (w *world) latency(ctx context.Context) error {
	r, _, err := w.pgbenchAll(ctx, []string{"-S", "-c", "1"}, w.o.duration, true)
	if err != nil {
		return err
	}
	w.table.compare("PG select-only, 1 client (latency ms)", r, func(p pgbenchResult) float64 { return p.latencyMS }, "%.3f", false, "<= 1.15x direct")
	w.socatRow("same, through socat in the proxy's place (latency ms)", r, func(p pgbenchResult) float64 { return p.latencyMS }, "%.3f")
	w.sideRow("unix", "same, through the proxy's unix socket (latency ms)", r, func(p pgbenchResult) float64 { return p.latencyMS }, "%.3f")
	return nil
}

func (w *world) connect(ctx context.Context) error {
	r, cpu, err := w.pgbenchAll(ctx, []string{"-S", "-C", "-c", strconv.Itoa(w.o.clients), "-j", "2"}, w.o.connectDuration, false) // socat forks per connection
	if err != nil {
		return err
	}
	w.table.compare(fmt.Sprintf("PG new connection per txn, %d clients, PostgreSQL trusting the login (tps)", w.o.clients), r, func(p pgbenchResult) float64 { return p.tps }, "%.0f", true,
		"(the proxy's own cost)")
	if n := r["proxy"].txns; n > 0 {
		w.table.single("proxy CPU per new connection, PostgreSQL trusting the login (µs)", fmt.Sprintf("%.0f", float64(cpu.Microseconds())/float64(n)), "")
	}
	return w.connectIAM(ctx)
}
