package integration

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
	"github.com/rds-iam-proxy/rds-iam-proxy/rdsiam"
)

// The iamtest helper in front of servers the tests start for themselves,
// with password logins as a CI service container has them (scram for
// PostgreSQL, an admin account with a password over TCP for MariaDB):
// the proxy and rdsiam log in through it as the user it created, a user
// it did not create gets the same cause and fix from both, and its Close
// leaves no user behind. Budget: about 15 s for both (two server starts).

const (
	helperAdminPassword = "admin-pass-for-iamtest"
	helperUser          = "ci_user"
	notIAMUser          = "nobody_here" // exists nowhere
)

// helperSigner signs with the keys the helper hands out, in its region,
// against its emulator: what AWSEnv says, without touching the process
// environment the world shares.
func helperSigner(env *iamtest.Env) []func(*awsconfig.LoadOptions) error {
	none := env.AWSEnv["AWS_CONFIG_FILE"]
	return []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(env.AWSEnv["AWS_REGION"]),
		awsconfig.WithBaseEndpoint(env.AWSEnv["AWS_ENDPOINT_URL_STS"]),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(env.AWSEnv["AWS_ACCESS_KEY_ID"], env.AWSEnv["AWS_SECRET_ACCESS_KEY"], "")),
		awsconfig.WithSharedConfigFiles([]string{none}),
		awsconfig.WithSharedCredentialsFiles([]string{none}),
	}
}

// helperProxy starts the proxy for the helper's front, as a user would
// configure it from the Env.
func helperProxy(t *testing.T, env *iamtest.Env, engine config.Engine) string {
	t.Helper()
	c := launch.NewConfig(engine, env.EndpointAddr())
	c.DialAddress, c.Listen, c.CABundle = env.DialAddress, "127.0.0.1:0", env.CAFile
	c.AWSLoadOptions = helperSigner(env)
	return startProxyWith(t, c)
}

func helperRDSIAM(t *testing.T, env *iamtest.Env, user string) *rdsiam.Signer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := rdsiam.New(ctx, rdsiam.Options{Engine: env.Engine, Endpoint: env.EndpointAddr(), DialAddress: env.DialAddress,
		CABundle: env.CAFile, User: user, AWSLoadOptions: helperSigner(env)})
	if err != nil {
		t.Fatalf("rdsiam.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIAMTestHelperPostgres(t *testing.T) {
	w.enter(t)
	ctx := testCtx(t, 2*time.Minute)
	pg, err := localpg.Start(ctx, localpg.Options{HBA: []string{"host all all 127.0.0.1/32 scram-sha-256"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+helperAdminPassword+"'; CREATE TABLE notes (n text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	env, err := iamtest.StartContext(ctx, iamtest.Options{Addr: pg.Addr(), AdminPassword: helperAdminPassword, DBUser: helperUser,
		Grants: []string{"GRANT SELECT ON notes TO " + helperUser}, Logger: newLogger(t, "iamtest")})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			env.Close()
		}
	})

	// psql through the proxy.
	port := helperProxy(t, env, config.Postgres)
	conn := "host=127.0.0.1 port=" + port + " user=" + helperUser + " dbname=postgres sslmode=disable connect_timeout=20"
	out, errOut, err := psql(t, conn, "-c", "SELECT current_user, pg_has_role('rds_iam', 'MEMBER'), (SELECT n FROM notes)")
	if err != nil {
		t.Fatalf("psql through the proxy: %v\n%s", err, errOut)
	}
	if got := strings.TrimSpace(out); got != helperUser+"|t|kept" {
		t.Fatalf("through the proxy: %q, want %s|t|kept", got, helperUser)
	}

	// pgx in process through rdsiam.
	s := helperRDSIAM(t, env, helperUser)
	cfg, err := pgxpool.ParseConfig("dbname=postgres")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BeforeConnect = s.BeforeConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var user, note string
	if err := pool.QueryRow(ctx, "SELECT current_user, n FROM notes").Scan(&user, &note); err != nil {
		t.Fatalf("rdsiam pgx: %v", s.Explain(ctx, err))
	}
	if user != helperUser || note != "kept" {
		t.Fatalf("rdsiam pgx: %q %q, want %s kept", user, note, helperUser)
	}

	// A user the helper did not create: the proxy's client and rdsiam's
	// caller hear the same cause and fix.
	_, errOut, err = psql(t, strings.Replace(conn, "user="+helperUser, "user="+notIAMUser, 1), "-c", "SELECT 1")
	if err == nil {
		t.Fatal("psql as a user that is not an IAM user logged in")
	}
	f := explainedPing(t, helperRDSIAM(t, env, notIAMUser), func(ctx context.Context, s *rdsiam.Signer) error {
		cfg, err := pgxpool.ParseConfig("dbname=postgres")
		if err != nil {
			return err
		}
		cfg.BeforeConnect = s.BeforeConnect
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Ping(ctx)
	})
	if f.Reason != failure.UpstreamAuth || !strings.Contains(errOut, "FATAL:  rds-iam-proxy: "+f.Cause) || !strings.Contains(errOut, "HINT:  "+f.Fix) {
		t.Fatalf("rdsiam explained %q (%s), the proxy told psql:\n%s", f.Text(), f.Reason, errOut)
	}

	if roles := pgRoles(t, ctx, pg); !strings.Contains(roles, helperUser) || !strings.Contains(roles, "rds_iam") {
		t.Fatalf("before Close the server has only %q", roles) // the check below would see nothing
	}
	pool.Close()
	closed = true
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if roles := pgRoles(t, ctx, pg); strings.Contains(roles, helperUser) || strings.Contains(roles, "rds_iam") {
		t.Fatalf("after Close the server still has %s", roles)
	}
}

// explainedPing runs ping with s and returns what s.Explain makes of its
// error, which must be a *failure.Failure.
func explainedPing(t *testing.T, s *rdsiam.Signer, ping func(context.Context, *rdsiam.Signer) error) *failure.Failure {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	err := ping(ctx, s)
	if err == nil {
		t.Fatalf("%s logged in", s.User())
	}
	var f *failure.Failure
	if !errors.As(s.Explain(ctx, err), &f) {
		t.Fatalf("Explain(%v) is not a *failure.Failure", err)
	}
	return f
}

// pgRoles lists the server's roles that are not its own (pg_*, postgres).
func pgRoles(t *testing.T, ctx context.Context, pg *localpg.Server) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres")+" password="+helperAdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var roles string
	if err := conn.QueryRow(ctx, "SELECT coalesce(string_agg(rolname, ','), '') FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> 'postgres'").Scan(&roles); err != nil {
		t.Fatal(err)
	}
	return roles
}

func TestIAMTestHelperMySQL(t *testing.T) {
	w.enter(t)
	ctx := testCtx(t, 2*time.Minute)
	ca, err := emulator.NewCA("iamtest MariaDB CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServerCertPEM("localhost")
	if err != nil {
		t.Fatal(err)
	}
	my, err := localmy.Start(ctx, localmy.Options{TLS: &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { my.Stop() })
	if err := my.Exec(ctx, "CREATE USER 'admin'@'%' IDENTIFIED BY '"+helperAdminPassword+"'", "GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION",
		"CREATE DATABASE "+appDB, "CREATE TABLE "+appDB+".notes (n TEXT)", "INSERT INTO "+appDB+".notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	env, err := iamtest.StartContext(ctx, iamtest.Options{Engine: iamtest.MySQL, Addr: my.Addr(), AdminUser: "admin", AdminPassword: helperAdminPassword,
		DBUser: helperUser, Grants: []string{"GRANT SELECT ON " + appDB + ".* TO '" + helperUser + "'@'%'"}, Logger: newLogger(t, "iamtest")})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			env.Close()
		}
	})
	var grants string
	if err := my.QueryRow(ctx, "SHOW CREATE USER '"+helperUser+"'@'%'").Scan(&grants); err != nil || !strings.Contains(grants, "REQUIRE SSL") {
		t.Fatalf("the IAM user must log in over TLS only: %q (%v)", grants, err)
	}

	// go-sql-driver through the proxy.
	port := helperProxy(t, env, config.MySQL)
	var user, note string
	if err := mysqlDB(t, port, helperUser).QueryRowContext(ctx, "SELECT CURRENT_USER(), n FROM notes").Scan(&user, &note); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if user != helperUser+"@%" || note != "kept" {
		t.Fatalf("through the proxy: %q %q, want %s@%% kept", user, note, helperUser)
	}

	// go-sql-driver in process through rdsiam.
	s := helperRDSIAM(t, env, helperUser)
	cfg := mysql.NewConfig()
	cfg.DBName = appDB
	connector, err := s.MySQLConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var cipher string
	if err := db.QueryRowContext(ctx, "SELECT n, (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher') FROM notes").Scan(&note, &cipher); err != nil {
		t.Fatalf("rdsiam mysql: %v", s.Explain(ctx, err))
	}
	if note != "kept" || cipher == "" {
		t.Fatalf("rdsiam mysql: %q, cipher %q; want kept over TLS", note, cipher)
	}

	// A user the helper did not create: the same cause and fix from the
	// proxy (one ERR text) and from rdsiam.
	var me *mysql.MySQLError
	err = mysqlDB(t, port, notIAMUser).PingContext(ctx)
	if !errors.As(err, &me) {
		t.Fatalf("ping through the proxy as %s: %v, want a MySQL error", notIAMUser, err)
	}
	f := explainedPing(t, helperRDSIAM(t, env, notIAMUser), func(ctx context.Context, s *rdsiam.Signer) error {
		c, err := s.MySQLConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		return db.PingContext(ctx)
	})
	// The proxy's ERR is "rds-iam-proxy: " and the text, fitted to 511
	// bytes (the fix kept whole).
	want := "rds-iam-proxy: " + f.Text()
	same := me.Message == want || len(want) > 511 && strings.HasSuffix(me.Message, f.Fix)
	if f.Reason != failure.UpstreamAuth || f.Code.Errno != me.Number || !same {
		t.Fatalf("rdsiam explained %q (%s, %d), the proxy told the client %d %q", f.Text(), f.Reason, f.Code.Errno, me.Number, me.Message)
	}

	db.Close()
	var n int
	if err := my.QueryRow(ctx, "SELECT COUNT(*) FROM mysql.user WHERE user = ?", helperUser).Scan(&n); err != nil || n != 1 {
		t.Fatalf("before Close %d users %s (%v)", n, helperUser, err) // the check below would see nothing
	}
	closed = true
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if err := my.QueryRow(ctx, "SELECT COUNT(*) FROM mysql.user WHERE user = ?", helperUser).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after Close %d users %s are left (%v)", n, helperUser, err)
	}
}
