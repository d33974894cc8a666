package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/aurorastack"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// startAuroraMySQLRig is startAuroraRig for Aurora MySQL: three MariaDB
// servers of the test's own (alpha the writer, beta and gamma readers)
// behind the emulated Aurora MySQL fronts, with an AWS emulator of its
// own: nothing of the shared world changes.
func startAuroraMySQLRig(t *testing.T, staleDNS time.Duration) *auroraRig {
	t.Helper()
	s, err := aurorastack.Start(t.Context(), aurorastack.Options{Engine: "mysql", User: iamUser, Database: appDB, StaleDNS: staleDNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &auroraRig{Stack: s, cluster: s.Cluster}
}

// selfSQL is the query that names the instance a session is on.
var selfSQL = topology.SQL[topology.MySQL].Self

// mysqlProxyDB is a go-sql-driver pool to the proxy on port that keeps no
// idle connection: every Conn is a new login.
func mysqlProxyDB(port string, timeout time.Duration) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = timeout, timeout, timeout
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	return db, nil
}

// goMySQLAttempt connects with go-sql-driver through the proxy on port,
// inserts a row, and says on which instance; it gives up after limit.
func goMySQLAttempt(ctx context.Context, port, client string, limit time.Duration) (a attempt) {
	a = attempt{client: client, start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	defer func() { a.end = time.Now() }()
	db, err := mysqlProxyDB(port, limit)
	if err != nil {
		a.err = err.Error()
		return a
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		a.err = err.Error()
		return a
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, fmt.Sprintf("INSERT INTO hits (client) VALUES ('%s')", client)); err != nil {
		a.err = err.Error()
		if readOnly(a.err) {
			// Where it was refused, for the failure's message.
			c.QueryRowContext(ctx, selfSQL).Scan(&a.instance)
			a.err += fmt.Sprintf(" (on %s, connected %s, refused %s)", a.instance, a.start.Format("15:04:05.000"), time.Now().Format("15:04:05.000"))
		}
		return a
	}
	if err := c.QueryRowContext(ctx, selfSQL).Scan(&a.instance); err != nil {
		a.err = err.Error()
	}
	return a
}

// mysqlCLIAttempt is goMySQLAttempt with the mysql client (MariaDB's):
// the two statements go as two COM_QUERYs, as the client splits them.
func mysqlCLIAttempt(ctx context.Context, bin, port string) attempt {
	return cliAttempt(ctx, "mysql", nil, bin, "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", port, "-u", iamUser,
		"--skip-ssl", "--batch", "--skip-column-names", "--connect-timeout=20", appDB,
		"-e", "INSERT INTO hits (client) VALUES ('mysql'); "+selfSQL)
}

// readOnly reports whether a client's error is a read-only instance's
// refusal of its INSERT (1290): a connection that landed on a demoted
// writer.
func readOnly(err string) bool { return strings.Contains(err, "1290") }

// TestAuroraMySQLFailover is TestAuroraFailover for Aurora MySQL: the
// proxy follows the writer by the topology (replica_host_status), not the
// cluster's DNS, spreads reader connections, ends sessions on a demoted
// writer with 1053 and its reason, and answers every client of a storm
// during a failover.
//
// Budget: 60 s in CI. The three MariaDB servers start in 5-15 s on a
// loaded 2-vCPU machine; the subtests take about 35-50 s together.
func TestAuroraMySQLFailover(t *testing.T) {
	w.enter(t)
	r := startAuroraMySQLRig(t, 8*time.Second)
	t.Run("doctor", func(t *testing.T) { auroraMySQLDoctor(t, r) })
	t.Run("reader spread", func(t *testing.T) { auroraMySQLReaderSpread(t, r) })
	t.Run("new connections follow the writer", func(t *testing.T) { auroraMySQLFollow(t, r) })
	t.Run("demoted writer sessions are cut", func(t *testing.T) { auroraMySQLDemotedCut(t, r) })
	t.Run("storm during a failover", func(t *testing.T) { auroraMySQLStorm(t, r) })
	t.Run("session reuse follows the writer", func(t *testing.T) { auroraMySQLReuse(t, r) })
	t.Run("pool_min_idle per instance follows the writer", func(t *testing.T) {
		auroraMinIdle(t, r, func(port string) reuseSession {
			db, err := mysqlProxyDB(port, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return myReuseSession(t.Context(), db)
		})
	})
	t.Run("prewarm per instance follows the writer", func(t *testing.T) {
		auroraPrewarm(t, r, "mysql", func(port string) attempt { return goMySQLAttempt(t.Context(), port, "prewarm", 20*time.Second) },
			func(err string) bool { return readOnly(err) || strings.Contains(err, "1053") || explained(err) })
	})
	t.Run("session reuse, 200 clients across a switchover", func(t *testing.T) {
		auroraMySQLReuseConcurrent(t, r, emulator.FailoverOptions{KeepSessions: true})
	})
	t.Run("session reuse, 200 clients across a failover", func(t *testing.T) { auroraMySQLReuseConcurrent(t, r, emulator.FailoverOptions{}) })
}

// auroraMySQLDoctor: doctor checks an Aurora MySQL cluster endpoint as a
// whole (as TestDoctorAuroraCluster does PostgreSQL's): every member's
// certificate verified for its instance name inside the MySQL handshake,
// and the topology read as the IAM user with the proxy's three queries.
func auroraMySQLDoctor(t *testing.T, r *auroraRig) {
	akid, secret := r.AWS.AWS.AddUser("aurora-mysql-doctor", emulator.Policy{Statements: append(r.cluster.ConnectPolicy(iamUser).Statements, apiStatement)})
	o := doctorOptions()
	o.Config = r.ProxyConfig()
	o.Config.AWSLoadOptions = append(append([]func(*awsconfig.LoadOptions) error{}, r.Signer...),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")))
	rep := runDoctor(t, o)
	expectStatus(t, rep, validate.StepMembers, validate.OK, "3 members of cluster emulated-aurora verified",
		"alpha (writer) valid until 20", "beta (reader) valid until 20", "gamma (reader) valid until 20")
	expectStatus(t, rep, validate.StepTopology, validate.OK, "writer alpha", "readers beta, gamma")

	// gamma dialed at beta's address answers with beta's certificate.
	swapped := o
	swapped.Config.InstanceDialAddresses = strings.Replace(o.Config.InstanceDialAddresses,
		r.cluster.InstanceName("gamma")+"="+r.cluster.InstanceAddr("gamma"), r.cluster.InstanceName("gamma")+"="+r.cluster.InstanceAddr("beta"), 1)
	rep = runDoctor(t, swapped)
	expectFailure(t, rep, validate.StepMembers, "1 of 3 members of cluster emulated-aurora fail TLS verify-full",
		"not valid for "+r.cluster.InstanceName("gamma"), "alpha (writer) valid until")
}

// auroraMySQLReaderSpread: a reader listener spreads 30 sessions over the
// two readers, least connections first.
func auroraMySQLReaderSpread(t *testing.T, r *auroraRig) {
	port := r.proxy(t, func(c *launch.Config) { c.Route = "reader" })
	ctx := testCtx(t, 60*time.Second)
	db, err := mysqlProxyDB(port, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := map[string]int{}
	for range 30 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("reader connection: %v", err)
		}
		defer c.Close()
		var id string
		if err := c.QueryRowContext(ctx, selfSQL).Scan(&id); err != nil {
			t.Fatal(err)
		}
		count[id]++
	}
	if count["alpha"] != 0 || count["beta"] < 14 || count["beta"] > 16 || count["gamma"] < 14 || count["gamma"] > 16 {
		t.Fatalf("30 reader sessions went %v, want beta and gamma 15 each (+-1), none on the writer alpha", count)
	}
}

// auroraMySQLFollow: the mysql client and go-sql-driver loop new
// connections, each doing an INSERT, across three alternating failovers;
// the bad window after each (connections that fail, or whose INSERT the
// old writer refuses as read-only) is under 5 s although cluster DNS takes
// 8 s to follow, and every error the clients see is the proxy's.
func auroraMySQLFollow(t *testing.T, r *auroraRig) {
	port := r.proxy(t)
	bin := w.My.BinPath("mariadb")
	if bin == "" {
		t.Fatal("the mariadb client is not installed (apt-get install mariadb-client)")
	}
	first := r.cluster.Writer()
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	var attempts []attempt
	record := func(a attempt) {
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			record(mysqlCLIAttempt(ctx, bin, port))
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			record(goMySQLAttempt(ctx, port, "go-sql-driver", 25*time.Second))
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(1500 * time.Millisecond)
	var changes []failoverChange
	other := "beta"
	if first == "beta" {
		other = "gamma"
	}
	for _, to := range []string{other, first, other} {
		at := time.Now()
		if err := r.cluster.Failover(t.Context(), to, emulator.FailoverOptions{}); err != nil {
			stop()
			wg.Wait()
			t.Fatal(err)
		}
		changes = append(changes, failoverChange{at, to})
		time.Sleep(4 * time.Second)
	}
	stopAt := time.Now()
	stop()
	wg.Wait()
	if len(attempts) < 20 {
		t.Fatalf("only %d connections in 13 s", len(attempts))
	}
	ro := 0
	for _, a := range attempts {
		if readOnly(a.err) {
			ro++
		}
	}
	t.Logf("%d connections had their INSERT refused as read-only (1290)", ro)
	checkFailoverWindows(t, attempts, first, changes, stopAt, 5*time.Second)
}

// auroraMySQLDemotedCut: after a switchover that keeps the old writer's
// sessions, the proxy ends its own session there that waits for a reply
// with 1053 and its reason; a reader listener's session, and a session on
// the new (healthy) writer, are left alone.
func auroraMySQLDemotedCut(t *testing.T, r *auroraRig) {
	ctx := testCtx(t, 60*time.Second)
	writerPort := r.proxy(t, func(c *launch.Config) { c.TopologyRefresh = config.Duration(300 * time.Millisecond) })
	readerPort := r.proxy(t, func(c *launch.Config) { c.Route = "reader" })
	conn := func(port string) *sql.Conn {
		db, err := mysqlProxyDB(port, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	on := func(c *sql.Conn) (id string, err error) {
		err = c.QueryRowContext(ctx, selfSQL).Scan(&id)
		return id, err
	}
	old := r.cluster.Writer()
	ws, rs := conn(writerPort), conn(readerPort)
	if got, err := on(ws); err != nil || got != old {
		t.Fatalf("writer session on %q (%v), want %s", got, err, old)
	}
	readerOn, err := on(rs)
	if err != nil || readerOn == old {
		t.Fatalf("reader session on %q (%v), want a reader", readerOn, err)
	}
	to := "gamma"
	if old == "gamma" || readerOn == "gamma" {
		to = "beta"
	}
	if to == readerOn || to == old {
		to = "alpha"
	}
	// The writer session waits for a reply when the failover comes: the
	// proxy can answer it with an ERR in its place.
	sleeping := make(chan error, 1)
	go func() {
		var v int
		sleeping <- ws.QueryRowContext(ctx, "SELECT SLEEP(20)").Scan(&v)
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	var cutErr error
	select {
	case cutErr = <-sleeping:
	case <-time.After(15 * time.Second):
		t.Fatalf("the session waiting on the demoted writer %s was not ended within 15 s", old)
	}
	var myErr *mysql.MySQLError
	if !errors.As(cutErr, &myErr) || myErr.Number != 1053 || !explained(myErr.Message) || !strings.Contains(myErr.Message, "no longer the writer") {
		t.Fatalf("the session on the demoted writer %s: %v; want 1053 with the proxy's reason", old, cutErr)
	}
	t.Logf("demoted session told after %s: %s", time.Since(start).Round(time.Millisecond), myErr.Message)
	if got, err := on(rs); err != nil || got != readerOn {
		t.Fatalf("the reader listener's session on %s after the failover: %q, %v; want it untouched", readerOn, got, err)
	}
	// A session on the new writer stays through later topology reads.
	ns := conn(writerPort)
	if got, err := on(ns); err != nil || got != to {
		t.Fatalf("a new writer session on %q (%v), want the new writer %s", got, err, to)
	}
	time.Sleep(time.Second) // three topology reads at 300 ms
	if _, err := ns.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('healthy')"); err != nil {
		t.Fatalf("a session on the healthy writer %s after the failover: %v; want it untouched", to, err)
	}
}

// auroraMySQLStorm: 100 go-sql-driver clients connect while a failover
// runs; each ends with its INSERT done or an error the proxy explained,
// none hangs.
func auroraMySQLStorm(t *testing.T, r *auroraRig) {
	port := r.proxy(t)
	ctx := t.Context()
	to := "alpha"
	if r.cluster.Writer() == "alpha" {
		to = "beta"
	}
	// Hung: no answer within the proxy's bound on a login (the handshake
	// timeout, 30 s) and 10 s more (see auroraStorm).
	const hung = 40 * time.Second
	results := make([]attempt, 100)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // over 1 s
			results[i] = goMySQLAttempt(ctx, port, fmt.Sprintf("storm-%d", i), hung+10*time.Second)
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	checkStorm(t, results, to, hung)
}
