package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// auroraRig is an emulated Aurora cluster over two throwaway PostgreSQL
// servers, with an IAM user allowed to connect as "app".
type auroraRig struct {
	aws     *AWS
	ca      *CA
	cluster *Cluster
	creds   [2]string
}

func startAuroraRig(t *testing.T, o AuroraOptions) *auroraRig {
	t.Helper()
	shortskip.Skip(t, "starts two PostgreSQL servers")
	ctx := t.Context()
	servers := make([]*localpg.Server, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for n := range servers {
		wg.Go(func() {
			servers[n], errs[n] = localpg.Start(ctx, localpg.Options{})
			if errs[n] == nil {
				errs[n] = servers[n].Exec(ctx, `CREATE ROLE rds_iam; CREATE ROLE app LOGIN IN ROLE rds_iam;
					CREATE TABLE t (x int); GRANT ALL ON t TO app`)
			}
		})
	}
	wg.Wait()
	for n, s := range servers {
		if s != nil {
			t.Cleanup(func() { s.Stop() })
		}
		if errs[n] != nil {
			t.Fatal(errs[n])
		}
	}
	a := NewAWS(Options{})
	ca, err := NewCA("aurora test CA")
	if err != nil {
		t.Fatal(err)
	}
	for n, id := range []string{"alpha", "beta"} {
		host, port, _ := net.SplitHostPort(servers[n].Addr())
		o.Instances = append(o.Instances, AuroraInstance{ID: id, Backend: servers[n].Addr(),
			Admin: fmt.Sprintf("host=%s port=%s user=postgres sslmode=disable", host, port)})
	}
	c, err := a.StartAuroraPostgres(ctx, ca, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	akid, secret := a.AddUser("aurora-tester", c.ConnectPolicy("app"))
	return &auroraRig{aws: a, ca: ca, cluster: c, creds: [2]string{akid, secret}}
}

// connect logs in as app through addr, with a token signed for name and
// TLS verified for name, as a client dialing name would.
func (r *auroraRig) connect(ctx context.Context, name, addr string) (*pgconn.PgConn, error) {
	tok, err := auth.BuildAuthToken(ctx, fmt.Sprintf("%s:%d", name, r.cluster.Port()), r.aws.Region(), "app",
		static(r.creds[0], r.creds[1], ""))
	if err != nil {
		return nil, err
	}
	cfg, err := pgconn.ParseConfig("user=app dbname=postgres sslmode=disable")
	if err != nil {
		return nil, err
	}
	cfg.Password = tok
	cfg.TLSConfig = &tls.Config{RootCAs: r.ca.Pool(), ServerName: name, MinVersion: tls.VersionTLS12}
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	cfg.ConnectTimeout = 5 * time.Second
	return pgconn.ConnectConfig(ctx, cfg)
}

// one runs sql on c and returns the first column of the first row.
func one(ctx context.Context, c *pgconn.PgConn, sql string) (string, error) {
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) == 0 {
		return "", nil
	}
	return string(res.Rows[0][0]), nil
}

// whereAndWriter logs in through addr (signed for name) and says which
// instance it landed on and which writer its topology names.
func (r *auroraRig) whereAndWriter(t *testing.T, name, addr string) (on, writer string) {
	t.Helper()
	ctx := t.Context()
	c, err := r.connect(ctx, name, addr)
	if err != nil {
		t.Fatalf("login through %s as %s: %v", addr, name, err)
	}
	defer c.Close(ctx)
	if on, err = one(ctx, c, "SELECT aurora_db_instance_identifier()"); err != nil {
		t.Fatal(err)
	}
	if writer, err = one(ctx, c, "SELECT server_id FROM aurora_replica_status() WHERE session_id = 'MASTER_SESSION_ID'"); err != nil {
		t.Fatal(err)
	}
	return on, writer
}

func TestAuroraFailoverTopologyReadOnlyAndStaleDNS(t *testing.T) {
	r := startAuroraRig(t, AuroraOptions{StaleDNS: 1500 * time.Millisecond, RestartDelay: 300 * time.Millisecond})
	ctx := t.Context()
	c := r.cluster
	if on, w := r.whereAndWriter(t, c.WriterName(), c.ClusterAddr()); on != "alpha" || w != "alpha" {
		t.Fatalf("before failover: the cluster name landed on %q, topology writer %q; want alpha, alpha", on, w)
	}
	if on, _ := r.whereAndWriter(t, c.ReaderName(), c.ReaderAddr()); on != "beta" {
		t.Fatalf("the reader name landed on %q, want beta", on)
	}
	held, err := r.connect(ctx, c.InstanceName("alpha"), c.InstanceAddr("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)

	if err := c.Failover(ctx, "beta", FailoverOptions{}); err != nil {
		t.Fatal(err)
	}
	if c.Writer() != "beta" {
		t.Fatalf("Writer() = %q after failover to beta", c.Writer())
	}
	// The RDS API's DBClusterMembers follow (TestDescribeAuroraClusterMembers
	// checks what the API makes of these).
	r.aws.mu.Lock()
	alphaW, betaW := c.fronts["alpha"].db.member.writer, c.fronts["beta"].db.member.writer
	r.aws.mu.Unlock()
	if alphaW || !betaW {
		t.Errorf("after failover to beta the RDS API says alpha writer=%v, beta writer=%v", alphaW, betaW)
	}
	// The old writer's session was cut (a restart).
	if _, err := one(ctx, held, "SELECT 1"); err == nil {
		t.Fatal("a session on the old writer survived a failover that restarts it")
	}
	// The old writer refuses connections while it restarts.
	if conn, err := r.connect(ctx, c.InstanceName("alpha"), c.InstanceAddr("alpha")); err == nil {
		conn.Close(ctx)
		t.Fatal("the old writer accepted a login while restarting")
	}
	// The new writer says so and takes writes.
	if on, w := r.whereAndWriter(t, c.InstanceName("beta"), c.InstanceAddr("beta")); on != "beta" || w != "beta" {
		t.Fatalf("new writer: landed on %q, topology writer %q", on, w)
	}
	nw, err := r.connect(ctx, c.InstanceName("beta"), c.InstanceAddr("beta"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, nw, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("INSERT on the new writer: %v", err)
	}
	nw.Close(ctx)
	// Within the stale window the cluster name still dials the old writer
	// (a token for the cluster name is accepted there), which is read-only.
	time.Sleep(400 * time.Millisecond) // the restart is over
	stale, err := r.connect(ctx, c.WriterName(), c.ClusterAddr())
	if err != nil {
		t.Fatalf("login through the stale cluster name: %v", err)
	}
	if on, _ := one(ctx, stale, "SELECT aurora_db_instance_identifier()"); on != "alpha" {
		t.Fatalf("within the stale window the cluster name landed on %q, want alpha", on)
	}
	_, err = one(ctx, stale, "INSERT INTO t VALUES (2)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" || !strings.Contains(pgErr.Message, "cannot execute INSERT in a read-only transaction") {
		t.Fatalf("INSERT on the old writer: %v; want 25006 cannot execute INSERT in a read-only transaction", err)
	}
	stale.Close(ctx)
	// After the window the name follows the writer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		on, w := r.whereAndWriter(t, c.WriterName(), c.ClusterAddr())
		if on == "beta" && w == "beta" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster name still lands on %q 5 s after a 1.5 s stale window", on)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if on, _ := r.whereAndWriter(t, c.ReaderName(), c.ReaderAddr()); on != "alpha" {
		t.Fatalf("after failover the reader name landed on %q, want alpha", on)
	}

	// A switchover back that keeps sessions: a session on beta (the old
	// writer now) lives on, read-only (the reload reaches it at its next
	// command; allow it a moment).
	kept, err := r.connect(ctx, c.InstanceName("beta"), c.InstanceAddr("beta"))
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close(ctx)
	if err := c.Failover(ctx, "alpha", FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 50 {
		if _, lastErr = one(ctx, kept, "INSERT INTO t VALUES (3)"); lastErr != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.As(lastErr, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("INSERT on the kept session of the old writer: %v; want 25006", lastErr)
	}
	if err := c.Failover(ctx, "alpha", FailoverOptions{}); err == nil {
		t.Fatal("a failover to the writer itself was accepted")
	}
}
