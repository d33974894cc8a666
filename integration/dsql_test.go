package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// Aurora DSQL through the proxy: the emulated DSQL front before the
// world's PostgreSQL, with DSQL's roles (admin, and dsql_app mapped to
// the signer with AWS IAM GRANT) made for the test. Budget: about 15 s
// for the file on a quiet machine (the storm is most of it).

const (
	dsqlApp      = "dsql_app"      // mapped to the signer
	dsqlUnmapped = "dsql_unmapped" // a role no principal is mapped to
)

// dsqlFront starts a DSQL front for the test and the roles it logs in as.
func dsqlFront(t *testing.T, o emulator.DSQLOptions) *emulator.DSQL {
	t.Helper()
	w.addPGRoles(t, "admin", dsqlApp, dsqlUnmapped)
	o.Backend = w.pg.Addr()
	o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "emulator", "test", t.Name())
	d, err := w.aws.AWS.StartDSQL(w.aws.CA, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dsqlSigner adds an IAM user of the test's own with policy p and returns
// its ARN and AWS options that sign as it (nothing in the process
// environment changes).
func dsqlSigner(t *testing.T, name string, p emulator.Policy) (string, []func(*awsconfig.LoadOptions) error) {
	t.Helper()
	akid, secret := w.aws.AWS.AddUser(name, p)
	none := filepath.Join(t.TempDir(), "none")
	return fmt.Sprintf("arn:aws:iam::%s:user/%s", w.aws.AWS.AccountID(), name), []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(w.aws.AWS.Region()),
		awsconfig.WithBaseEndpoint(w.aws.URL()),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")),
		awsconfig.WithSharedConfigFiles([]string{none}),
		awsconfig.WithSharedCredentialsFiles([]string{none}),
	}
}

// bothActions allows DbConnectAdmin and DbConnect on d.
func bothActions(d *emulator.DSQL) emulator.Policy {
	p := d.ConnectPolicy(true)
	p.Statements = append(p.Statements, d.ConnectPolicy(false).Statements...)
	return p
}

// dsqlProxy starts a proxy for d as a user writes it (engine dsql, the
// cluster's endpoint), dialing the front and trusting the emulator's CA.
func dsqlProxy(t *testing.T, d *emulator.DSQL, signer []func(*awsconfig.LoadOptions) error, mods ...func(*launch.Config)) string {
	t.Helper()
	c := launch.NewConfig(config.DSQL, d.Endpoint()+":5432")
	c.DialAddress, c.Listen, c.CABundle, c.AWSLoadOptions = d.Addr(), "127.0.0.1:0", w.caFile, signer
	return startProxyWith(t, c, mods...)
}

// dsqlDSN is a libpq connection string to the proxy as role; db "" is
// libpq's default (the role's name).
func dsqlDSN(port, role, db string) string {
	s := fmt.Sprintf("host=127.0.0.1 port=%s user=%s sslmode=disable connect_timeout=20", port, role)
	if db != "" {
		s += " dbname=" + db
	}
	return s
}

// TestDSQLClients: psql, pgx and psycopg2 log in through the proxy and
// query; admin gets a DbConnectAdmin token and dsql_app a DbConnect one
// (the front takes each action only for its role); every login lands in
// the database postgres whatever the client named; --dsql-action admin
// for another role is refused with the reason.
func TestDSQLClients(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlclientsit0000000000001"})
	arn, signer := dsqlSigner(t, "dsql-clients", bothActions(d))
	d.GrantIAM(dsqlApp, arn)
	port := dsqlProxy(t, d, signer)

	// The README's line: psql -h 127.0.0.1 -p PORT -U admin postgres; and
	// with no database named (libpq asks for "admin").
	for _, db := range []string{"postgres", ""} {
		out, errOut, err := psql(t, dsqlDSN(port, "admin", db), "-c", "SELECT current_user, current_database()")
		if err != nil || strings.TrimSpace(out) != "admin|postgres" {
			t.Fatalf("psql as admin (dbname %q): %q %v\n%s", db, out, err, errOut)
		}
	}

	ctx := testCtx(t, 30*time.Second)
	c, err := pgconn.Connect(ctx, dsqlDSN(port, dsqlApp, "postgres"))
	if err != nil {
		t.Fatalf("pgx as %s: %v", dsqlApp, err)
	}
	res := c.ExecParams(ctx, "SELECT current_user || '@' || current_database()", nil, nil, nil, nil).Read()
	c.Close(ctx)
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != dsqlApp+"@postgres" {
		t.Fatalf("pgx query: %v %q", res.Err, res.Rows)
	}

	const script = `import sys, psycopg2
c = psycopg2.connect(sys.argv[1])
cur = c.cursor()
cur.execute("SELECT current_user, current_database()")
print("%s|%s" % cur.fetchone())
c.close()`
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", script, dsqlDSN(port, dsqlApp, "appdb"))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != dsqlApp+"|postgres" {
		t.Fatalf("psycopg2 as %s (dbname appdb, forced to postgres): %v\n%s", dsqlApp, err, out)
	}

	logs := w.logs.String()
	for _, want := range []string{"engine=dsql", "IAM login accepted"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}

	// --dsql-action admin signs DbConnectAdmin for every role: DSQL takes
	// it only for admin.
	port = dsqlProxy(t, d, signer, func(c *launch.Config) { c.DSQLAction = "admin" })
	_, errOut, err := psql(t, dsqlDSN(port, dsqlApp, "postgres"), "-c", "SELECT 1")
	if err == nil || !strings.Contains(errOut, "dsql:DbConnectAdmin") || !strings.Contains(errOut, "only the role admin") {
		t.Errorf("dsql_action admin as %s: %v\n%s", dsqlApp, err, errOut)
	}
}

// TestDSQLRefusals: a signer without DbConnectAdmin logging in as admin
// is told the action and the cluster's ARN; a role mapped to nobody is
// told to map it with AWS IAM GRANT; both as psql shows them (HINT line).
func TestDSQLRefusals(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlrefusalsit000000000001"})
	arn, signer := dsqlSigner(t, "dsql-connect-only", d.ConnectPolicy(false))
	d.GrantIAM(dsqlApp, arn)
	port := dsqlProxy(t, d, signer)

	_, errOut, err := psql(t, dsqlDSN(port, "admin", "postgres"), "-c", "SELECT 1")
	if err == nil {
		t.Fatal("admin logged in without DbConnectAdmin")
	}
	for _, want := range []string{`rds-iam-proxy: Aurora DSQL rejected the IAM token for role "admin"`, "HINT:  allow dsql:DbConnectAdmin on " + d.ClusterARN(), arn} {
		if !strings.Contains(errOut, want) {
			t.Errorf("psql's error lacks %q:\n%s", want, errOut)
		}
	}

	_, errOut, err = psql(t, dsqlDSN(port, dsqlUnmapped, "postgres"), "-c", "SELECT 1")
	want := fmt.Sprintf("AWS IAM GRANT %s TO '%s'", dsqlUnmapped, arn)
	if err == nil || !strings.Contains(errOut, want) || !strings.Contains(errOut, "dsql:DbConnect on "+d.ClusterARN()) {
		t.Errorf("unmapped role: %v, want %q in:\n%s", err, want, errOut)
	}
	if out, errOut, err := psql(t, dsqlDSN(port, dsqlApp, "postgres"), "-c", "SELECT current_user"); err != nil || strings.TrimSpace(out) != dsqlApp {
		t.Errorf("the mapped role, same proxy: %q %v\n%s", out, err, errOut)
	}
}

// TestDSQLStorm: 300 clients at once against a cluster that takes 2 new
// connections a second after a burst of 20: each one logs in or is told
// 53400 in its protocol, none hangs (each is answered within the
// generous bound below). DSQL's own rate is 100 a second (burst 1,000);
// a front at 100/s is not reached on a loaded machine, whose emulated
// front took 300 logins at under 100 a second (non-race: 7 s; under
// -race beside other work: fewer than 12 a second), so the storm would
// not test the limit at all. The proxy's timeouts are raised so that a
// slow machine makes the storm slow, not failed.
func TestDSQLStorm(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlstormit000000000000001", Rate: 2, Burst: 20})
	arn, signer := dsqlSigner(t, "dsql-storm", bothActions(d))
	d.GrantIAM(dsqlApp, arn)
	port := dsqlProxy(t, d, signer, func(c *launch.Config) {
		c.ConnectTimeout, c.HandshakeTimeout = config.Duration(90*time.Second), config.Duration(100*time.Second)
	})

	const n = 300
	type outcome struct {
		took time.Duration
		err  error
	}
	results := make([]outcome, n)
	stormDSN := fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=postgres sslmode=disable", port, dsqlApp)
	ctx := testCtx(t, 3*time.Minute)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a client not answered by then hangs
			defer cancel()
			t0 := time.Now()
			c, err := pgconn.Connect(cctx, stormDSN) // bounded by cctx only
			results[i] = outcome{time.Since(t0), err}
			if err == nil {
				c.Close(cctx)
			}
		})
	}
	wg.Wait()
	var in, rate int
	var took []time.Duration
	for i, r := range results {
		took = append(took, r.took)
		var pgErr *pgconn.PgError
		switch {
		case r.err == nil:
			in++
		case errors.As(r.err, &pgErr) && pgErr.Code == "53400" && strings.Contains(pgErr.Message, "rate"):
			rate++
		default:
			t.Errorf("client %d: %v (want a login or 53400)", i, r.err)
		}
	}
	slices.Sort(took)
	t.Logf("storm of %d: %d in, %d told 53400 (the front refused %d connections, retries included); first answer p50 %s, p99 %s, max %s; all done in %s",
		n, in, rate, d.RateRefusals(), took[n/2], took[n*99/100], took[n-1], time.Since(start))
	if in < 20 {
		t.Errorf("only %d logged in; the burst alone is 20", in)
	}
	if rate == 0 || d.RateRefusals() == 0 {
		t.Errorf("no client was over the rate: the front's limit was not reached")
	}
}

// TestDSQLSessionLimit: a session the cluster ends at its session
// lifetime (shortened to 2 s) ends with FATAL 57P01 naming the limit,
// with the pool advice as psql's HINT, and the proxy logs it.
func TestDSQLSessionLimit(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlageit00000000000000001", MaxSessionAge: 2 * time.Second})
	_, signer := dsqlSigner(t, "dsql-age", bothActions(d))
	port := dsqlProxy(t, d, signer, func(c *launch.Config) { c.DSQLSessionLimit = config.Duration(2 * time.Second) })

	t0 := time.Now()
	_, errOut, err := psql(t, dsqlDSN(port, "admin", "postgres"), "-c", "SELECT pg_sleep(20)")
	if err == nil || time.Since(t0) > 15*time.Second {
		t.Fatalf("the session outlived its limit: %v after %s\n%s", err, time.Since(t0), errOut)
	}
	for _, want := range []string{"FATAL:  rds-iam-proxy: Aurora DSQL ended this session at its session lifetime limit (2s)",
		"HINT:  keep your pool's max connection lifetime under an hour: pgxpool MaxConnLifetime, HikariCP maxLifetime, SQLAlchemy pool_recycle"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("psql's error lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(w.logs.String(), "session ended by the upstream at its session age limit") {
		t.Error("the proxy did not log the cut")
	}
}

// TestDSQLDoctor: doctor checks a DSQL upstream DSQL's way: the cluster
// name, TLS against the given trust, the dsql action on the cluster ARN
// (IAM's simulator), the login, and DSQL's notes; a signer without
// DbConnectAdmin checking admin fails at the policy step with the fix.
func TestDSQLDoctor(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqldoctorit00000000000001"})
	p := bothActions(d)
	p.Statements = append(p.Statements, apiStatement)
	arn, signer := dsqlSigner(t, "dsql-doctor", p)
	d.GrantIAM(dsqlApp, arn)
	cfg := launch.NewConfig(config.DSQL, d.Endpoint()+":5432")
	cfg.DialAddress, cfg.CABundle, cfg.AWSLoadOptions = d.Addr(), w.caFile, signer
	o := validate.DoctorOptions{Config: cfg, DBUser: dsqlApp, StepTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), nil)).With("component", "doctor")}
	rep := runDoctor(t, o)
	if !rep.OK() {
		t.Fatal("doctor failed a DSQL upstream that works")
	}
	for step, want := range map[string]string{
		validate.StepEndpoint:   "Aurora DSQL cluster dsqldoctorit00000000000001; tokens are signed for dsql:DbConnect",
		validate.StepDSQLPolicy: "may dsql:DbConnect on " + d.ClusterARN(),
		validate.StepLogin:      "logged in as " + dsqlApp,
		validate.StepDSQLNotes:  "retry the whole transaction",
	} {
		if c := check(t, rep, step); c.Status != validate.OK || !strings.Contains(c.Detail, want) {
			t.Errorf("%s: %s %q, want %q", step, c.Status, c.Detail, want)
		}
	}

	_, connectOnly := dsqlSigner(t, "dsql-doctor-connect", emulator.Policy{Statements: append(d.ConnectPolicy(false).Statements, apiStatement)})
	o.Config.AWSLoadOptions, o.DBUser = connectOnly, "admin"
	rep = runDoctor(t, o)
	expectFailure(t, rep, validate.StepDSQLPolicy, "dsql:DbConnectAdmin on "+d.ClusterARN(), "setup policy --engine dsql")
}
