package emulator

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// auroraMySQLRig is an emulated Aurora MySQL cluster over three throwaway
// MariaDB servers (alpha the writer), with an IAM user "app" who may
// SELECT and INSERT on appdb.t and nothing more.
type auroraMySQLRig struct {
	aws     *AWS
	ca      *CA
	cluster *Cluster
	creds   [2]string
	servers []*localmy.Server
}

func startAuroraMySQLRig(t *testing.T, o AuroraOptions) *auroraMySQLRig {
	t.Helper()
	shortskip.Skip(t, "starts three MariaDB servers")
	ctx := t.Context()
	ids := []string{"alpha", "beta", "gamma"}
	servers := make([]*localmy.Server, len(ids))
	errs := make([]error, len(ids))
	const password = "backend-secret-for-app"
	var wg sync.WaitGroup
	for n := range servers {
		wg.Go(func() {
			servers[n], errs[n] = localmy.Start(ctx, localmy.Options{})
			if errs[n] == nil {
				errs[n] = servers[n].Exec(ctx, "CREATE USER 'app'@'%' IDENTIFIED BY '"+password+"'",
					"CREATE DATABASE appdb", "CREATE TABLE appdb.t (x INT)", "GRANT SELECT, INSERT ON appdb.t TO 'app'@'%'")
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
	ca, err := NewCA("aurora mysql test CA")
	if err != nil {
		t.Fatal(err)
	}
	for n, id := range ids {
		o.Instances = append(o.Instances, AuroraInstance{ID: id, Backend: servers[n].Addr(), Admin: servers[n].DSN("root", "", "")})
	}
	o.MySQL = MySQLOptions{BackendPassword: password, IAMUsers: []string{"app"}}
	c, err := a.StartAuroraMySQL(ctx, ca, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	akid, secret := a.AddUser("aurora-mysql-tester", c.ConnectPolicy("app"))
	return &auroraMySQLRig{aws: a, ca: ca, cluster: c, creds: [2]string{akid, secret}, servers: servers}
}

// token is an IAM token for app signed for name, as a client dialing name
// signs.
func (r *auroraMySQLRig) token(ctx context.Context, name string) (string, error) {
	return auth.BuildAuthToken(ctx, fmt.Sprintf("%s:%d", name, r.cluster.Port()), r.aws.Region(), "app",
		static(r.creds[0], r.creds[1], ""))
}

// connect opens one go-sql-driver session as app through addr, with a
// token signed for name and TLS verified for name.
func (r *auroraMySQLRig) connect(ctx context.Context, name, addr string) (*sql.Conn, error) {
	tok, err := r.token(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "app", tok, "tcp", addr, "appdb"
	cfg.AllowCleartextPasswords = true
	cfg.TLS = &tls.Config{RootCAs: r.ca.Pool(), ServerName: name, MinVersion: tls.VersionTLS12}
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	c, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	// The pool goes when its one session does.
	context.AfterFunc(ctx, func() { db.Close() })
	return c, nil
}

// mysqlProbe is what the three topology queries say on one session.
type mysqlProbe struct {
	self     string
	readOnly string
	writer   string
	readers  []string
	rows     int
}

// probe runs the proxy's three topology queries (text protocol: no
// arguments) and checks the shape of the topology's rows.
func probe(t *testing.T, c *sql.Conn) mysqlProbe {
	t.Helper()
	ctx := t.Context()
	q := topology.SQL[topology.MySQL]
	var p mysqlProbe
	if err := c.QueryRowContext(ctx, q.Self).Scan(&p.self); err != nil {
		t.Fatalf("%s: %v", q.Self, err)
	}
	if err := c.QueryRowContext(ctx, q.ReadOnly).Scan(&p.readOnly); err != nil {
		t.Fatalf("%s: %v", q.ReadOnly, err)
	}
	rows, err := c.QueryContext(ctx, q.Topology)
	if err != nil {
		t.Fatalf("%s: %v", q.Topology, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if want := []string{"server_id", "session_id = 'MASTER_SESSION_ID'", "last_update_timestamp"}; strings.Join(cols, "|") != strings.Join(want, "|") {
		t.Errorf("topology columns %q, want %q", cols, want)
	}
	for rows.Next() {
		var id, writer, updated string
		if err := rows.Scan(&id, &writer, &updated); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse("2006-01-02 15:04:05.000000", updated)
		if err != nil || time.Since(at).Abs() > time.Minute {
			t.Errorf("member %s: last_update_timestamp %q is not now (UTC, with microseconds): %v", id, updated, err)
		}
		switch writer {
		case "1":
			p.writer = id
		case "0":
			p.readers = append(p.readers, id)
		default:
			t.Errorf("member %s: is-writer %q, want 1 or 0", id, writer)
		}
		p.rows++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

// insert writes a row on c.
func insert(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	return err
}

// wantReadOnlyError checks err is Aurora MySQL's read-only refusal.
func wantReadOnlyError(t *testing.T, where string, err error) {
	t.Helper()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 || !strings.Contains(me.Message, "--read-only option so it cannot execute this statement") {
		t.Fatalf("INSERT on %s: %v; want error 1290 (... --read-only option so it cannot execute this statement)", where, err)
	}
}

func TestAuroraMySQLTopologyFailoverReadOnlyAndStaleDNS(t *testing.T) {
	r := startAuroraMySQLRig(t, AuroraOptions{StaleDNS: 1500 * time.Millisecond, RestartDelay: 300 * time.Millisecond})
	ctx := t.Context()
	c := r.cluster
	if c.Port() != 3306 || c.Engine() != "mysql" {
		t.Fatalf("port %d engine %q, want 3306 mysql", c.Port(), c.Engine())
	}

	// Before: the cluster name is alpha, writable; the reader name turns
	// between beta and gamma, read-only; every member names alpha writer.
	w, err := r.connect(ctx, c.WriterName(), c.ClusterAddr())
	if err != nil {
		t.Fatalf("login through the cluster name: %v", err)
	}
	if p := probe(t, w); p.self != "alpha" || p.readOnly != "0" || p.writer != "alpha" || strings.Join(p.readers, ",") != "beta,gamma" || p.rows != 3 {
		t.Fatalf("cluster name before failover: %+v; want alpha, writable, writer alpha, readers beta and gamma", p)
	}
	if err := insert(ctx, w); err != nil {
		t.Fatalf("INSERT on the writer: %v", err)
	}
	// A normal query passes the shim to MariaDB, and so does one that is
	// not exactly a topology query.
	var n int
	if err := w.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT COUNT(*) FROM t through the shim: %d, %v; want 1", n, err)
	}
	var s string
	err = w.QueryRowContext(ctx, topology.SQL[topology.MySQL].Self+" ").Scan(&s)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1193 {
		t.Fatalf("a near-miss of the server id query: %q, %v; want MariaDB's own error 1193 (unknown system variable)", s, err)
	}
	w.Close()
	landed := map[string]bool{}
	for range 2 {
		rd, err := r.connect(ctx, c.ReaderName(), c.ReaderAddr())
		if err != nil {
			t.Fatalf("login through the reader name: %v", err)
		}
		p := probe(t, rd)
		if p.readOnly != "1" || p.writer != "alpha" {
			t.Fatalf("reader name: %+v; want read-only, writer alpha", p)
		}
		landed[p.self] = true
		wantReadOnlyError(t, "reader "+p.self, insert(ctx, rd))
		rd.Close()
	}
	if !landed["beta"] || !landed["gamma"] {
		t.Fatalf("the reader name landed on %v, want beta and gamma in turn", landed)
	}

	held, err := r.connect(ctx, c.InstanceName("alpha"), c.InstanceAddr("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := c.Failover(ctx, "beta", FailoverOptions{}); err != nil {
		t.Fatal(err)
	}
	if c.Writer() != "beta" {
		t.Fatalf("Writer() = %q after failover to beta", c.Writer())
	}
	// The old writer's session was cut, and it refuses logins while it
	// restarts.
	if err := held.PingContext(ctx); err == nil {
		t.Fatal("a session on the old writer survived a failover that restarts it")
	}
	if conn, err := r.connect(ctx, c.InstanceName("alpha"), c.InstanceAddr("alpha")); err == nil {
		conn.Close()
		t.Fatal("the old writer accepted a login while restarting")
	}
	// The new writer says so and takes writes.
	nw, err := r.connect(ctx, c.InstanceName("beta"), c.InstanceAddr("beta"))
	if err != nil {
		t.Fatal(err)
	}
	if p := probe(t, nw); p.self != "beta" || p.readOnly != "0" || p.writer != "beta" || strings.Join(p.readers, ",") != "alpha,gamma" {
		t.Fatalf("new writer: %+v; want beta, writable, writer beta, readers alpha and gamma", p)
	}
	if err := insert(ctx, nw); err != nil {
		t.Fatalf("INSERT on the new writer: %v", err)
	}
	nw.Close()
	// Within the stale window the cluster name still dials alpha, now a
	// read-only reader that knows beta is the writer.
	time.Sleep(400 * time.Millisecond) // the restart is over
	stale, err := r.connect(ctx, c.WriterName(), c.ClusterAddr())
	if err != nil {
		t.Fatalf("login through the stale cluster name: %v", err)
	}
	if p := probe(t, stale); p.self != "alpha" || p.readOnly != "1" || p.writer != "beta" {
		t.Fatalf("within the stale window the cluster name: %+v; want alpha, read-only, writer beta", p)
	}
	wantReadOnlyError(t, "the old writer", insert(ctx, stale))
	stale.Close()
	// After the window the name follows the writer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cw, err := r.connect(ctx, c.WriterName(), c.ClusterAddr())
		if err != nil {
			t.Fatal(err)
		}
		p := probe(t, cw)
		cw.Close()
		if p.self == "beta" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster name still lands on %q 5 s after a 1.5 s stale window", p.self)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A switchover back that keeps sessions: a session on beta lives on,
	// read-only at once, and its own topology answers follow.
	kept, err := r.connect(ctx, c.InstanceName("beta"), c.InstanceAddr("beta"))
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if err := c.Failover(ctx, "alpha", FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	wantReadOnlyError(t, "the kept session of the old writer", insert(ctx, kept))
	if p := probe(t, kept); p.self != "beta" || p.readOnly != "1" || p.writer != "alpha" {
		t.Fatalf("the kept session after switching back: %+v; want beta, read-only, writer alpha", p)
	}
	aw, err := r.connect(ctx, c.InstanceName("alpha"), c.InstanceAddr("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if err := insert(ctx, aw); err != nil {
		t.Fatalf("INSERT on alpha, writer again: %v", err)
	}
	aw.Close()
	if err := c.Failover(ctx, "alpha", FailoverOptions{}); err == nil {
		t.Fatal("a failover to the writer itself was accepted")
	}
	mariadbClientProbe(t, r, "gamma", "alpha")
	for _, deprecateEOF := range []bool{false, true} {
		pipelinedProbe(t, r, "gamma", deprecateEOF)
	}
}

// mariadbClientProbe runs the three topology queries and a normal one
// with the mariadb command-line client (another client library, with its
// own capabilities) through instance id's front, and checks the answers
// name writer.
func mariadbClientProbe(t *testing.T, r *auroraMySQLRig, id, writer string) {
	t.Helper()
	ctx := t.Context()
	c := r.cluster
	bin := r.servers[0].BinPath("mariadb")
	if bin == "" {
		t.Fatal("the mariadb client is not installed (apt-get install -y mariadb-client)")
	}
	tok, err := r.token(ctx, c.InstanceName(id))
	if err != nil {
		t.Fatal(err)
	}
	caFile := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(caFile, r.ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(c.InstanceAddr(id), ":")
	q := topology.SQL[topology.MySQL]
	// The client sends each statement of -e as a COM_QUERY of its own.
	cmd := exec.CommandContext(ctx, bin, "--no-defaults", "-h", host, "-P", port, "-u", "app", "--password="+tok,
		"--ssl-ca="+caFile, "--batch", "--skip-column-names", "appdb",
		"-e", q.Self+"; "+q.ReadOnly+"; "+q.Topology+"; SELECT COUNT(*) FROM t")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 || lines[0] != id || lines[1] != "1" {
		t.Fatalf("mariadb said:\n%s\nwant %s, 1, three topology rows, a count", out, id)
	}
	for n, member := range []string{"alpha", "beta", "gamma"} {
		f := strings.Split(lines[2+n], "\t")
		want := map[bool]string{true: "1", false: "0"}[member == writer]
		if len(f) != 3 || f[0] != member || f[1] != want {
			t.Errorf("topology row %d: %q, want %s with is-writer %s", n, lines[2+n], member, want)
		}
	}
}

// pipelinedProbe logs in to instance id's front at the wire level, with or
// without CLIENT_DEPRECATE_EOF, and sends three queries in one write, the
// topology one between two that MariaDB answers itself: the answers come
// back in order, each framed as the session's capabilities say (an EOF
// after the column definitions only without DEPRECATE_EOF).
func pipelinedProbe(t *testing.T, r *auroraMySQLRig, id string, deprecateEOF bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := r.cluster
	tok, err := r.token(ctx, c.InstanceName(id))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.InstanceAddr(id))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	pending, err := mywire.ReadGreeting(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	caps := mywire.CapLongPassword | mywire.CapLongFlag | mywire.CapProtocol41 | mywire.CapTransactions | mywire.CapSecureConnection |
		mywire.CapPluginAuth | mywire.CapPluginAuthLenenc
	if deprecateEOF {
		caps |= mywire.CapDeprecateEOF
	}
	sess, err := pending.Login(ctx, &tls.Config{RootCAs: r.ca.Pool(), ServerName: c.InstanceName(id), MinVersion: tls.VersionTLS12},
		mywire.Login{User: "app", Database: "appdb", Password: tok, Plugin: mywire.PluginClearPassword,
			Client: &mywire.HandshakeResponse{Caps: caps, MaxPacket: 16 << 20, Charset: 45}})
	if err != nil {
		t.Fatalf("wire-level login (DEPRECATE_EOF %v): %v", deprecateEOF, err)
	}
	conn := sess.Conn
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var batch []byte
	for _, q := range []string{"SELECT 'first'", topology.SQL[topology.MySQL].Self, "SELECT 'last'"} {
		batch = append(batch, packet(0, append([]byte{comQuery}, q...))...)
	}
	if _, err := conn.Write(batch); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", id, "last"} {
		got, sawEOF := readOneValue(t, conn)
		if got != want || sawEOF == deprecateEOF {
			t.Fatalf("pipelined answers (DEPRECATE_EOF %v): got %q (EOF after the columns: %v), want %q (EOF: %v)",
				deprecateEOF, got, sawEOF, want, !deprecateEOF)
		}
	}
}

// readOneValue reads a text result set of one column and one row (a short
// value) and says whether an EOF packet followed the column definition.
func readOneValue(t *testing.T, conn net.Conn) (value string, eofAfterColumns bool) {
	t.Helper()
	read := func() []byte {
		_, p, err := mywire.ReadPacket(conn, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 0 && p[0] == 0xff {
			t.Fatalf("an error instead of a result: %v", mywire.ParseErr(p))
		}
		return p
	}
	if p := read(); len(p) != 1 || p[0] != 1 {
		t.Fatalf("column count packet %x, want one column", p)
	}
	read() // the column definition
	row := read()
	if row[0] == 0xfe && len(row) < 9 {
		eofAfterColumns = true
		row = read()
	}
	if len(row) == 0 || int(row[0]) != len(row)-1 {
		t.Fatalf("row packet %x, want one short string", row)
	}
	if end := read(); end[0] != 0xfe {
		t.Fatalf("after the row %x, want the result's end (0xfe)", end)
	}
	return string(row[1:]), eofAfterColumns
}
