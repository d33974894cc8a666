// Command failover measures how long new connections fail or land on the
// old writer after an Aurora failover, for clients that dial the cluster
// name themselves (through DNS that follows the new writer only after
// -stale-dns) and for clients of the proxy, which follows the topology.
//
//	go run ./bench/failover [-failovers 10] [-stale-dns 20s] [-gap 25s] [-engine postgres|mysql|postgres,mysql]
//
// It starts an emulated Aurora cluster of three instances
// (internal/throwaway/aurorastack: a PostgreSQL or MariaDB server per
// instance, emulated AWS, a forwarder playing the cluster's DNS) and the
// proxy in this process. PostgreSQL clients are pgconn; MySQL clients are
// go-sql-driver/mysql. Two loops run throughout, each opening a new connection
// per iteration that INSERTs a row and says which instance it ran on: one
// direct (token signed for the cluster name, verify-full TLS for it,
// dialed through the stale-DNS forwarder), one through the proxy. Every
// -gap a failover moves the writer (restart of the old writer, as Aurora
// does). Per failover, the bad window is the time from the failover to
// the end of the last connection that failed or ran on another instance
// than the writer; the extra latency is what clients of the proxy waited
// beyond the usual connect time while their login was held. It prints
// each failover's figures, then the median and p99 of each. Figures from
// a shared machine are noisy.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/aurorastack"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

func main() {
	failovers := flag.Int("failovers", 10, "failovers to measure")
	stale := flag.Duration("stale-dns", 20*time.Second, "how long the cluster name keeps dialing the old writer after a failover")
	gap := flag.Duration("gap", 0, "time between failovers (0: stale-dns + 5s, so the direct window can close)")
	var engines string
	flag.StringVar(&engines, "engine", "postgres", "engines, comma-separated: postgres, mysql")
	flag.StringVar(&engines, "engines", "postgres", "the same as -engine")
	flag.Parse()
	if *gap == 0 {
		*gap = *stale + 5*time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, e := range strings.Split(engines, ",") {
		switch e = strings.TrimSpace(e); e {
		case "postgres", "mysql":
			if err := run(ctx, e, *failovers, *stale, *gap); err != nil {
				fmt.Fprintln(os.Stderr, "failover:", err)
				os.Exit(1)
			}
		default:
			fmt.Fprintf(os.Stderr, "failover: unknown engine %q\n", e)
			os.Exit(2)
		}
	}
}

// attempt is one new connection's fate.
type attempt struct {
	start, end time.Time
	instance   string
	err        string
}

// client opens one new connection, INSERTs a row, and says on which
// instance it ran.
type client func(ctx context.Context) (instance string, err error)

func run(ctx context.Context, engine string, failovers int, stale, gap time.Duration) error {
	o := aurorastack.Options{StaleDNS: stale}
	if engine == "mysql" {
		o.Engine = "mysql"
	}
	s, err := aurorastack.Start(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := launch.Start(ctx, s.ProxyConfig(), log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(sctx)
	}()
	var direct, viaProxy client
	if engine == "mysql" {
		direct, viaProxy, err = mysqlClients(s, r.Port())
	} else {
		direct, viaProxy, err = postgresClients(s, r.Port())
	}
	if err != nil {
		return err
	}
	lctx, stopLoops := context.WithCancel(ctx)
	var mu sync.Mutex
	got := map[string][]attempt{}
	var wg sync.WaitGroup
	loop := func(name string, c client) {
		wg.Go(func() {
			for lctx.Err() == nil {
				a := try(lctx, c)
				if lctx.Err() == nil {
					mu.Lock()
					got[name] = append(got[name], a)
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	loop("direct", direct)
	loop("proxy", viaProxy)

	fmt.Printf("failover bench (%s): %d failovers, stale DNS %s, %s apart; loaded machines give noisy figures\n", engine, failovers, stale, gap)
	time.Sleep(3 * time.Second) // the usual connect time, before any failover
	type change struct {
		at     time.Time
		writer string
	}
	var changes []change
	ids := s.Cluster.Instances()
	for i := range failovers {
		to := ids[1+i%2] // alpha -> beta -> gamma -> beta ... never the writer itself
		if to == s.Cluster.Writer() {
			to = ids[0]
		}
		at := time.Now()
		if err := s.Cluster.Failover(ctx, to, emulator.FailoverOptions{}); err != nil {
			stopLoops()
			wg.Wait()
			return err
		}
		changes = append(changes, change{at, to})
		select {
		case <-time.After(gap):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	stopLoops()
	wg.Wait()

	writerAt := func(t time.Time) string {
		w := ids[0]
		for _, c := range changes {
			if !c.at.After(t) {
				w = c.writer
			}
		}
		return w
	}
	usual := map[string]time.Duration{}
	for name, as := range got {
		var d []time.Duration
		for _, a := range as {
			if len(changes) > 0 && a.end.Before(changes[0].at) && a.err == "" {
				d = append(d, a.end.Sub(a.start))
			}
		}
		usual[name] = quantile(d, 0.5)
	}
	windows := map[string][]time.Duration{}
	var extra []time.Duration
	for name, as := range got {
		ws := make([]time.Duration, len(changes))
		for _, a := range as {
			i := -1
			for n, c := range changes {
				if !c.at.After(a.end) {
					i = n
				}
			}
			if i < 0 {
				continue
			}
			good := a.err == "" && (a.instance == writerAt(a.start) || a.instance == writerAt(a.end))
			if !good {
				ws[i] = max(ws[i], a.end.Sub(changes[i].at))
			} else if name == "proxy" && a.start.Sub(changes[i].at) < 5*time.Second {
				extra = append(extra, max(0, a.end.Sub(a.start)-usual[name]))
			}
		}
		windows[name] = ws
	}
	fmt.Printf("%-4s %-7s %12s %12s\n", "#", "writer", "direct", "proxy")
	for i, c := range changes {
		fmt.Printf("%-4d %-7s %12s %12s\n", i+1, c.writer, windows["direct"][i].Round(time.Millisecond), windows["proxy"][i].Round(time.Millisecond))
	}
	for _, name := range []string{"direct", "proxy"} {
		fmt.Printf("%-6s bad window: median %s, p99 %s (usual connect+INSERT %s, %d connections)\n", name,
			quantile(windows[name], 0.5).Round(time.Millisecond), quantile(windows[name], 0.99).Round(time.Millisecond),
			usual[name].Round(time.Millisecond), len(got[name]))
	}
	fmt.Printf("proxy  extra latency of connections in the 5 s after a failover: median %s, p99 %s, max %s\n",
		quantile(extra, 0.5).Round(time.Millisecond), quantile(extra, 0.99).Round(time.Millisecond), quantile(extra, 1).Round(time.Millisecond))
	return nil
}

// postgresClients are the PostgreSQL clients (pgconn): direct dials the
// cluster name itself, through the forwarder that plays its DNS, with a
// token for that name; viaProxy connects to the proxy on port.
func postgresClients(s *aurorastack.Stack, port string) (direct, viaProxy client, err error) {
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("user=%s dbname=%s sslmode=disable connect_timeout=20", s.User, s.Database))
	if err != nil {
		return nil, nil, err
	}
	pool, err := caPool(s)
	if err != nil {
		return nil, nil, err
	}
	cfg.TLSConfig = &tls.Config{RootCAs: pool, ServerName: s.Cluster.WriterName(), MinVersion: tls.VersionTLS12}
	addr := s.Cluster.ClusterAddr()
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	direct = func(ctx context.Context) (string, error) {
		c := cfg.Copy()
		tok, err := clusterToken(ctx, s)
		if err != nil {
			return "", err
		}
		c.Password = tok
		return pgInsert(ctx, func(ctx context.Context) (*pgconn.PgConn, error) { return pgconn.ConnectConfig(ctx, c) })
	}
	proxyDSN := fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable connect_timeout=20", port, s.User, s.Database)
	viaProxy = func(ctx context.Context) (string, error) {
		return pgInsert(ctx, func(ctx context.Context) (*pgconn.PgConn, error) { return pgconn.Connect(ctx, proxyDSN) })
	}
	return direct, viaProxy, nil
}

// pgInsert connects, INSERTs, and says where it ran.
func pgInsert(ctx context.Context, connect func(context.Context) (*pgconn.PgConn, error)) (string, error) {
	c, err := connect(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	res, err := c.Exec(ctx, "INSERT INTO hits (client) VALUES ('bench'); SELECT aurora_db_instance_identifier()").ReadAll()
	switch {
	case err != nil:
		return "", err
	case len(res) != 2 || len(res[1].Rows) != 1:
		return "", errors.New("unexpected results")
	}
	return string(res[1].Rows[0][0]), nil
}

// mysqlClients are the MySQL clients (go-sql-driver/mysql, a new login
// per attempt): direct dials the cluster name itself, through the
// forwarder that plays its DNS, over TLS verified for that name with a
// token for it; viaProxy connects to the proxy on port.
func mysqlClients(s *aurorastack.Stack, port string) (direct, viaProxy client, err error) {
	pool, err := caPool(s)
	if err != nil {
		return nil, nil, err
	}
	dcfg := mysql.NewConfig()
	dcfg.User, dcfg.DBName, dcfg.Net = s.User, s.Database, "tcp"
	dcfg.Addr = fmt.Sprintf("%s:%d", s.Cluster.WriterName(), s.Cluster.Port())
	dcfg.TLS = &tls.Config{RootCAs: pool, ServerName: s.Cluster.WriterName(), MinVersion: tls.VersionTLS12}
	dcfg.AllowCleartextPasswords = true
	addr := s.Cluster.ClusterAddr()
	dcfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	if err := dcfg.Apply(mysql.BeforeConnect(func(ctx context.Context, c *mysql.Config) error {
		tok, err := clusterToken(ctx, s)
		c.Passwd = tok
		return err
	})); err != nil {
		return nil, nil, err
	}
	pcfg := mysql.NewConfig()
	pcfg.User, pcfg.DBName, pcfg.Net, pcfg.Addr = s.User, s.Database, "tcp", "127.0.0.1:"+port
	for _, c := range []*mysql.Config{dcfg, pcfg} {
		c.Timeout, c.ReadTimeout, c.WriteTimeout = 20*time.Second, 20*time.Second, 20*time.Second
		c.Logger = &mysql.NopLogger{}
	}
	return mysqlInsert(dcfg), mysqlInsert(pcfg), nil
}

// mysqlInsert is a client that logs in with cfg, INSERTs, and says where
// it ran (@@aurora_server_id).
func mysqlInsert(cfg *mysql.Config) client {
	return func(ctx context.Context) (string, error) {
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return "", err
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		db.SetMaxIdleConns(0)
		c, err := db.Conn(ctx)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('bench')"); err != nil {
			return "", err
		}
		var id string
		err = c.QueryRowContext(ctx, topology.SQL[topology.MySQL].Self).Scan(&id)
		return id, err
	}
}

// clusterToken is a token for the cluster's writer name.
func clusterToken(ctx context.Context, s *aurorastack.Stack) (string, error) {
	return auth.BuildAuthToken(ctx, fmt.Sprintf("%s:%d", s.Cluster.WriterName(), s.Cluster.Port()), "us-east-1", s.User,
		credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretKey, ""))
}

// caPool trusts the stack's CA.
func caPool(s *aurorastack.Stack) (*x509.CertPool, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	return emulatorPool(pem)
}

// try runs one client attempt and says how it went.
func try(ctx context.Context, c client) attempt {
	a := attempt{start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	id, err := c(ctx)
	if err != nil {
		a.err = err.Error()
	}
	a.instance, a.end = id, time.Now()
	return a
}

// quantile is the q-quantile of d (nearest rank); 0 when empty.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// emulatorPool trusts the PEM certificates in pem.
func emulatorPool(pem []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in the CA file")
	}
	return p, nil
}
