package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// The validate tests each make their own database, schema and users with
// unique names and remove them at the end, so nothing they break (CONNECT
// revoked from PUBLIC, say) reaches the other tests.

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "_" + hex.EncodeToString(b)
}

func mustReqs(t *testing.T, specs ...string) []validate.Requirement {
	t.Helper()
	r, err := validate.ParseRequirements(specs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// report renders a report for failure messages.
func reportText(r *validate.Report) string {
	var b bytes.Buffer
	r.WriteText(&b)
	return b.String()
}

// find returns the report's check named name.
func find(t *testing.T, r *validate.Report, name string) validate.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in:\n%s", name, reportText(r))
	return validate.Check{}
}

// fixes is every fix the report asks for, in order.
func fixes(r *validate.Report) []string {
	var out []string
	for _, c := range r.Checks {
		if c.Fix != "" && (c.Status == validate.Fail || c.Status == validate.Warn) {
			out = append(out, c.Fix)
		}
	}
	return out
}

// allPass fails the test unless every check is ok (no warning either).
func allPass(t *testing.T, r *validate.Report, what string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Status != validate.OK {
			t.Fatalf("%s: check %q is %s:\n%s", what, c.Name, c.Status, reportText(r))
		}
	}
	if !r.OK() {
		t.Fatalf("%s: report not OK", what)
	}
}

// placeholders fills %[1]s (the user), %[2]s (the database) and %% in a
// test case's text.
func placeholders(user, db string) func(string) string {
	return strings.NewReplacer("%[1]s", user, "%[2]s", db, "%%", "%").Replace
}

// ---- Postgres ----

// pgFixture is a database of its own with schema app (two tables with
// serial sequences) and a role set up right for pgReqs.
type pgFixture struct {
	db, user string
}

var pgTableReqs = []string{"app.*:SELECT,INSERT", "app.t1:UPDATE"}
var pgSeqReqs = []string{"app.*:USAGE,SELECT"}

func pgOptions(t *testing.T, f pgFixture, admin bool) validate.DBOptions {
	return validate.DBOptions{User: f.user, Database: f.db, Admin: admin,
		Require: mustReqs(t, pgTableReqs...), RequireSequences: mustReqs(t, pgSeqReqs...)}
}

func newPGDatabase(t *testing.T) string {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	db := uniqueName(t, "vdb")
	if err := w.pg.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.pg.Exec(ctx, "DROP DATABASE "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return db
}

// dropRoleAtEnd drops the role after the database (registered before it,
// so it runs after: cleanups run last-in first-out).
func dropRoleAtEnd(t *testing.T, role string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.pg.Exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s", pgx.Identifier{role}.Sanitize())); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// newPGFixture makes the database and the role (named user exactly), set
// up right for pgOptions.
func newPGFixture(t *testing.T, user string) pgFixture {
	t.Helper()
	dropRoleAtEnd(t, user)
	f := pgFixture{db: newPGDatabase(t), user: user}
	u := pgx.Identifier{user}.Sanitize()
	pgExec(t, f.db, fmt.Sprintf(`
CREATE ROLE %[1]s WITH LOGIN;
GRANT rds_iam TO %[1]s;
CREATE SCHEMA app;
CREATE TABLE app.t1 (id serial PRIMARY KEY, v text);
CREATE TABLE app.t2 (id bigserial PRIMARY KEY);
GRANT USAGE ON SCHEMA app TO %[1]s;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA app TO %[1]s;
GRANT UPDATE ON app.t1 TO %[1]s;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA app TO %[1]s;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT, INSERT ON TABLES TO %[1]s;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT USAGE, SELECT ON SEQUENCES TO %[1]s;
`, u))
	return f
}

func pgExec(t *testing.T, db, sql string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	if err := w.pg.ExecIn(ctx, db, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgAdminValidate runs validate as the admin (postgres) inspecting o.User.
func pgAdminValidate(t *testing.T, db string, o validate.DBOptions) *validate.Report {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, w.pg.ConnString("postgres", db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	return validate.Postgres(ctx, conn, o)
}

// iamRoleFor is an IAM role that may rds-db:connect as users on the
// Postgres and the MySQL fronts; proxies assume it with --role-arn.
func iamRoleFor(t *testing.T, users ...string) string {
	t.Helper()
	p := w.front.ConnectPolicy(users...)
	p.Statements = append(p.Statements, w.my.ConnectPolicy(users...).Statements...)
	return w.aws.AWS.AddRole(uniqueName(t, "validate"), p)
}

// pgSelfValidate logs in as f.user through a proxy (IAM token) and runs
// validate as that user.
func pgSelfValidate(t *testing.T, port string, o validate.DBOptions) *validate.Report {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable connect_timeout=20", port, o.User, o.Database))
	if err != nil {
		t.Fatalf("log in as %s through the proxy: %v", o.User, err)
	}
	defer conn.Close(context.Background())
	o.Admin = false
	return validate.Postgres(ctx, conn, o)
}

// TestValidatePostgresRight: a role set up right passes every check, both
// inspected by an admin and checking itself through the proxy.
func TestValidatePostgresRight(t *testing.T) {
	w.enter(t)
	f := newPGFixture(t, uniqueName(t, "vu"))
	allPass(t, pgAdminValidate(t, f.db, pgOptions(t, f, true)), "admin")

	arn := iamRoleFor(t, f.user)
	port := startProxy(t, func(c *launch.Config) { c.RoleARN = arn })
	r := pgSelfValidate(t, port, pgOptions(t, f, false))
	t.Logf("as the user:\n%s", reportText(r))
	allPass(t, r, "as the user")
	if c := find(t, r, "SELECT,INSERT on tables in app"); !strings.Contains(c.Detail, "all 2 tables") {
		t.Errorf("detail %q", c.Detail)
	}
}

// TestValidatePostgresWrong: each way of setting the role up wrong fails
// (or warns) the right check with the exact fix; running the printed fixes
// as the admin makes validate pass.
func TestValidatePostgresWrong(t *testing.T) {
	w.enter(t)
	cases := []struct {
		name   string
		break_ string // SQL run as the admin in the database; %[1]s is the role, %[2]s the database
		check  string
		status validate.Status
		fix    string
	}{
		{"nologin", "ALTER ROLE %[1]s NOLOGIN", "login", validate.Fail, "ALTER ROLE %[1]s WITH LOGIN;"},
		{"not in rds_iam", "REVOKE rds_iam FROM %[1]s", "rds_iam membership", validate.Fail, "GRANT rds_iam TO %[1]s;"},
		{"in rds_ad", "DO $$BEGIN CREATE ROLE rds_ad; EXCEPTION WHEN duplicate_object THEN NULL; END$$; GRANT rds_ad TO %[1]s", "not rds_ad", validate.Fail, "REVOKE rds_ad FROM %[1]s;"},
		{"no connect", "REVOKE CONNECT ON DATABASE %[2]s FROM PUBLIC", "connect %[2]s", validate.Fail, "GRANT CONNECT ON DATABASE %[2]s TO %[1]s;"},
		{"no schema usage", "REVOKE USAGE ON SCHEMA app FROM %[1]s", "usage on schema app", validate.Fail, "GRANT USAGE ON SCHEMA app TO %[1]s;"},
		{"table privilege", "REVOKE INSERT ON app.t2 FROM %[1]s", "SELECT,INSERT on tables in app", validate.Fail, "GRANT INSERT ON ALL TABLES IN SCHEMA app TO %[1]s;"},
		{"one table", "REVOKE UPDATE ON app.t1 FROM %[1]s", "UPDATE on app.t1", validate.Fail, "GRANT UPDATE ON TABLE app.t1 TO %[1]s;"},
		{"sequence privilege", "REVOKE USAGE ON ALL SEQUENCES IN SCHEMA app FROM %[1]s", "USAGE,SELECT on sequences in app", validate.Fail, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA app TO %[1]s;"},
		{"default privileges", "ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT, INSERT ON TABLES FROM %[1]s", "default privileges for future tables in app", validate.Warn,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT, INSERT ON TABLES TO %[1]s;"},
		{"sequence default privileges", "ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE USAGE ON SEQUENCES FROM %[1]s", "default privileges for future sequences in app", validate.Warn,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT USAGE, SELECT ON SEQUENCES TO %[1]s;"},
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		w.pg.Exec(ctx, "DROP ROLE IF EXISTS rds_ad")
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPGFixture(t, uniqueName(t, "vu"))
			sub := placeholders(f.user, f.db)
			pgExec(t, f.db, sub(tc.break_))
			o := pgOptions(t, f, true)
			r := pgAdminValidate(t, f.db, o)
			c := find(t, r, sub(tc.check))
			if c.Status != tc.status || c.Fix != sub(tc.fix) {
				t.Fatalf("check %q: %s, fix %q; want %s, fix %q\n%s", c.Name, c.Status, c.Fix, tc.status, sub(tc.fix), reportText(r))
			}
			if (tc.status == validate.Fail) == r.OK() {
				t.Fatalf("report OK()=%v with a %s check", r.OK(), tc.status)
			}
			for _, fix := range fixes(r) {
				pgExec(t, f.db, fix)
			}
			allPass(t, pgAdminValidate(t, f.db, o), "after the fixes")
		})
	}

	// The master-user trap: a member of rds_superuser in rds_iam can no
	// longer log in with its password. The fix takes it out of rds_iam,
	// after which the trap check passes and (of course) the rds_iam check
	// fails: the master user should not be the IAM user.
	t.Run("master user", func(t *testing.T) {
		f := newPGFixture(t, uniqueName(t, "vu"))
		pgExec(t, f.db, "DO $$BEGIN CREATE ROLE rds_superuser; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w.pg.Exec(ctx, "DROP ROLE IF EXISTS rds_superuser")
		})
		pgExec(t, f.db, "GRANT rds_superuser TO "+f.user)
		o := pgOptions(t, f, true)
		r := pgAdminValidate(t, f.db, o)
		c := find(t, r, "master user not in rds_iam")
		if c.Status != validate.Warn || c.Fix != "REVOKE rds_iam FROM "+f.user+";" || !strings.Contains(c.Detail, "password no longer works") {
			t.Fatalf("%+v\n%s", c, reportText(r))
		}
		pgExec(t, f.db, c.Fix)
		r = pgAdminValidate(t, f.db, o)
		if c := find(t, r, "master user not in rds_iam"); c.Status != validate.OK {
			t.Fatalf("after the fix: %+v", c)
		}
		if c := find(t, r, "rds_iam membership"); c.Status != validate.Fail {
			t.Fatalf("after the fix: %+v", c)
		}
	})

	// A role created with a quoted mixed-case name is not the lower-case
	// one: validate names it, and the rename fix makes the asked-for role.
	t.Run("case", func(t *testing.T) {
		lower := uniqueName(t, "vcase")
		mixed := "V" + lower[1:]
		dropRoleAtEnd(t, lower)
		f := newPGFixture(t, mixed)
		o := pgOptions(t, f, true)
		o.User = lower
		r := pgAdminValidate(t, f.db, o)
		c := find(t, r, "role exists")
		wantFix := fmt.Sprintf("ALTER ROLE %q RENAME TO %s;", mixed, lower)
		if c.Status != validate.Fail || !strings.Contains(c.Detail, fmt.Sprintf("no role %s; did you mean %s?", lower, mixed)) || c.Fix != wantFix {
			t.Fatalf("%+v, want fix %q\n%s", c, wantFix, reportText(r))
		}
		pgExec(t, f.db, c.Fix)
		allPass(t, pgAdminValidate(t, f.db, o), "after the rename")
	})

	// A schema or table that does not exist fails, naming a schema that
	// differs only in case; there is no GRANT that fixes it.
	t.Run("no such schema or table", func(t *testing.T) {
		f := newPGFixture(t, uniqueName(t, "vu"))
		o := pgOptions(t, f, true)
		o.Require = mustReqs(t, "App.*:SELECT", "app.nope:SELECT")
		r := pgAdminValidate(t, f.db, o)
		if c := find(t, r, "usage on schema App"); c.Status != validate.Fail || c.Detail != "no schema App; did you mean app?" || c.Fix != "" {
			t.Fatalf("%+v", c)
		}
		if c := find(t, r, "SELECT on app.nope"); c.Status != validate.Fail || c.Detail != "no table app.nope" {
			t.Fatalf("%+v", c)
		}
	})

	// No role at all: the fix is the whole setup, and it passes.
	t.Run("no role", func(t *testing.T) {
		missing := uniqueName(t, "vnew")
		dropRoleAtEnd(t, missing) // after the database (cleanups run last first)
		f := newPGFixture(t, uniqueName(t, "vu"))
		o := pgOptions(t, f, true)
		o.User = missing
		r := pgAdminValidate(t, f.db, o)
		c := find(t, r, "role exists")
		if c.Status != validate.Fail || !strings.HasPrefix(c.Fix, "CREATE USER "+missing+" WITH LOGIN; GRANT rds_iam TO "+missing+";") {
			t.Fatalf("%+v", c)
		}
		pgExec(t, f.db, c.Fix)
		allPass(t, pgAdminValidate(t, f.db, o), "after the setup")
	})
}

// TestValidatePostgresAsUser: through the proxy, as the user itself, a
// missing privilege fails with its fix; the admin runs it and the user's
// own check passes.
func TestValidatePostgresAsUser(t *testing.T) {
	w.enter(t)
	f := newPGFixture(t, uniqueName(t, "vu"))
	arn := iamRoleFor(t, f.user)
	port := startProxy(t, func(c *launch.Config) { c.RoleARN = arn })
	pgExec(t, f.db, fmt.Sprintf("REVOKE INSERT ON app.t1 FROM %[1]s; REVOKE SELECT ON app.t1_id_seq FROM %[1]s", f.user))
	r := pgSelfValidate(t, port, pgOptions(t, f, false))
	want := map[string]string{
		"SELECT,INSERT on tables in app":   "GRANT INSERT ON ALL TABLES IN SCHEMA app TO " + f.user + ";",
		"USAGE,SELECT on sequences in app": "GRANT SELECT ON ALL SEQUENCES IN SCHEMA app TO " + f.user + ";",
	}
	for name, fix := range want {
		if c := find(t, r, name); c.Status != validate.Fail || c.Fix != fix {
			t.Fatalf("%+v, want fix %q", c, fix)
		}
	}
	for _, fix := range fixes(r) {
		pgExec(t, f.db, fix)
	}
	allPass(t, pgSelfValidate(t, port, pgOptions(t, f, false)), "after the fixes")
}

// ---- MySQL ----

// myFixture is a MariaDB database of its own and an account in it.
type myFixture struct {
	db, user string
}

var myReqs = func(db string) []string { return []string{db + ".*:SELECT,INSERT", db + ".t1:UPDATE"} }

func myOptions(t *testing.T, f myFixture, admin bool) validate.DBOptions {
	return validate.DBOptions{User: f.user, Database: f.db, Admin: admin, Require: mustReqs(t, myReqs(f.db)...)}
}

func myExec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	if err := w.My.Exec(ctx, stmts...); err != nil {
		t.Fatal(err)
	}
}

// backendHash is the password hash of the suite's MariaDB accounts: the
// emulated front logs in to MariaDB with that password, so an account
// made with it can log in through the front with a token.
func backendHash(t *testing.T) string {
	t.Helper()
	var h string
	if err := w.My.QueryRow(testCtx(t, 10*time.Second), "SELECT authentication_string FROM mysql.user WHERE User = ? AND Host = '%'", iamUser).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// markAWSPlugin writes AWSAuthenticationPlugin into the account's row of
// mysql.global_priv, which mysql.user (what validate reads) shows. MariaDB
// has no such plugin: the account keeps logging in with the backend
// password from the server's in-memory copy. Statements that rewrite the
// account (ALTER USER, RENAME USER) write that in-memory copy back, so
// tests mark again after them.
func markAWSPlugin(t *testing.T, user string) {
	t.Helper()
	myExec(t, fmt.Sprintf("UPDATE mysql.global_priv SET Priv = JSON_SET(Priv, '$.plugin', 'AWSAuthenticationPlugin', '$.authentication_string', 'RDS') WHERE User = '%s' AND Host = '%%'", user))
}

func newMyDatabase(t *testing.T) string {
	t.Helper()
	db := uniqueName(t, "vdb")
	myExec(t, "CREATE DATABASE "+db, "CREATE TABLE "+db+".t1 (id INT PRIMARY KEY)", "CREATE TABLE "+db+".t2 (id INT PRIMARY KEY)")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.My.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return db
}

func dropAccountAtEnd(t *testing.T, user string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.My.Exec(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// newMyFixture makes the database and the account set up right (plugin
// marked unless mark is false).
func newMyFixture(t *testing.T, user string, mark bool) myFixture {
	t.Helper()
	f := myFixture{db: newMyDatabase(t), user: user}
	dropAccountAtEnd(t, user)
	acct := fmt.Sprintf("'%s'@'%%'", user)
	myExec(t,
		fmt.Sprintf("CREATE USER %s IDENTIFIED BY PASSWORD '%s' REQUIRE SSL", acct, backendHash(t)),
		fmt.Sprintf("GRANT SELECT, INSERT ON `%s`.* TO %s", f.db, acct),
		fmt.Sprintf("GRANT UPDATE ON `%s`.`t1` TO %s", f.db, acct))
	if mark {
		markAWSPlugin(t, user)
	}
	return f
}

func myAdminValidate(t *testing.T, o validate.DBOptions) *validate.Report {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	db, err := sql.Open("mysql", w.My.SocketDSN("root", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o.Admin = true
	return validate.MySQL(ctx, db, o)
}

func mySelfValidate(t *testing.T, port string, o validate.DBOptions) *validate.Report {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = o.User, "tcp", "127.0.0.1:"+port, o.Database
	cfg.Timeout = 20 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("log in as %s through the proxy: %v", o.User, err)
	}
	o.Admin = false
	return validate.MySQL(ctx, db, o)
}

// mysqlIAMProxy makes user an IAM user of the MySQL front and starts a
// proxy whose role may connect as it.
func mysqlIAMProxy(t *testing.T, user string) string {
	t.Helper()
	w.setMySQLIAMUser(t, user, true)
	arn := iamRoleFor(t, user)
	return startMySQLProxy(t, func(c *launch.Config) { c.RoleARN = arn })
}

// TestValidateMySQLRight: an account set up right passes, inspected by
// root (reading mysql.user, i.e. mysql.global_priv) and as itself through
// the proxy.
func TestValidateMySQLRight(t *testing.T) {
	w.enter(t)
	f := newMyFixture(t, uniqueName(t, "vu"), true)
	allPass(t, myAdminValidate(t, myOptions(t, f, true)), "admin")
	port := mysqlIAMProxy(t, f.user)
	r := mySelfValidate(t, port, myOptions(t, f, false))
	t.Logf("as the user:\n%s", reportText(r))
	allPass(t, r, "as the user")
	if c := find(t, r, "require ssl"); !strings.Contains(c.Detail, "REQUIRE SSL") {
		t.Errorf("require ssl as the user: %+v", c)
	}
}

// TestValidateMySQLWrong: each wrong setup fails the right check with the
// exact fix, and the fix makes validate pass.
func TestValidateMySQLWrong(t *testing.T) {
	w.enter(t)
	cases := []struct {
		name   string
		break_ string // %[1]s user, %[2]s database
		check  string
		fix    string
	}{
		{"require none", "ALTER USER '%[1]s'@'%%' REQUIRE NONE", "require ssl", "ALTER USER '%[1]s'@'%%' REQUIRE SSL;"},
		{"database grant", "REVOKE INSERT ON `%[2]s`.* FROM '%[1]s'@'%%'", "SELECT,INSERT on %[2]s.*", "GRANT INSERT ON `%[2]s`.* TO '%[1]s'@'%%';"},
		{"table grant", "REVOKE UPDATE ON `%[2]s`.`t1` FROM '%[1]s'@'%%'", "UPDATE on %[2]s.t1", "GRANT UPDATE ON `%[2]s`.`t1` TO '%[1]s'@'%%';"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newMyFixture(t, uniqueName(t, "vu"), false)
			sub := placeholders(f.user, f.db)
			myExec(t, sub(tc.break_))
			markAWSPlugin(t, f.user)
			o := myOptions(t, f, true)
			r := myAdminValidate(t, o)
			c := find(t, r, sub(tc.check))
			want := sub(tc.fix)
			if c.Status != validate.Fail || c.Fix != want || r.OK() {
				t.Fatalf("%+v, want fail with %q\n%s", c, want, reportText(r))
			}
			for _, fix := range fixes(r) {
				myExec(t, fix)
			}
			markAWSPlugin(t, f.user) // ALTER USER wrote back the in-memory plugin
			allPass(t, myAdminValidate(t, o), "after the fixes")
		})
	}

	// The plugin: MariaDB cannot run the printed ALTER USER ... IDENTIFIED
	// WITH AWSAuthenticationPlugin (it has no such plugin), so the test
	// checks the fix's text and then makes the change the fix makes on RDS
	// by writing the plugin name into the row the check reads.
	t.Run("plugin", func(t *testing.T) {
		f := newMyFixture(t, uniqueName(t, "vu"), false)
		o := myOptions(t, f, true)
		r := myAdminValidate(t, o)
		c := find(t, r, "authentication plugin")
		want := fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';", f.user)
		if c.Status != validate.Fail || c.Fix != want || !strings.Contains(c.Detail, "mysql_native_password") {
			t.Fatalf("%+v, want fix %q", c, want)
		}
		markAWSPlugin(t, f.user)
		allPass(t, myAdminValidate(t, o), "after the plugin change")
	})

	t.Run("case", func(t *testing.T) {
		lower := uniqueName(t, "vcase")
		mixed := "V" + lower[1:]
		dropAccountAtEnd(t, lower)
		f := newMyFixture(t, mixed, true)
		o := myOptions(t, f, true)
		o.User = lower
		r := myAdminValidate(t, o)
		c := find(t, r, "user exists")
		want := fmt.Sprintf("RENAME USER '%s'@'%%' TO '%s'@'%%';", mixed, lower)
		if c.Status != validate.Fail || c.Fix != want || !strings.Contains(c.Detail, "did you mean '"+mixed+"'@'%'") {
			t.Fatalf("%+v, want fix %q", c, want)
		}
		myExec(t, c.Fix)
		markAWSPlugin(t, lower)
		allPass(t, myAdminValidate(t, o), "after the rename")
	})

	// No account: the fix is the whole setup; on MariaDB its plugin
	// clause becomes the backend password (see markAWSPlugin).
	t.Run("no account", func(t *testing.T) {
		db := newMyDatabase(t)
		user := uniqueName(t, "vnew")
		dropAccountAtEnd(t, user)
		o := myOptions(t, myFixture{db: db, user: user}, true)
		r := myAdminValidate(t, o)
		c := find(t, r, "user exists")
		if c.Status != validate.Fail || !strings.HasPrefix(c.Fix, fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;", user)) {
			t.Fatalf("%+v", c)
		}
		for _, stmt := range splitStatements(forMariaDB(t, c.Fix)) {
			myExec(t, stmt)
		}
		markAWSPlugin(t, user)
		allPass(t, myAdminValidate(t, o), "after the setup")
	})
}

// TestValidateMySQLAsUser: as the user through the proxy, a missing grant
// fails with its fix, and after the admin runs it the user's check passes.
func TestValidateMySQLAsUser(t *testing.T) {
	w.enter(t)
	f := newMyFixture(t, uniqueName(t, "vu"), false)
	port := mysqlIAMProxy(t, f.user)
	myExec(t, fmt.Sprintf("REVOKE INSERT ON `%s`.* FROM '%s'@'%%'", f.db, f.user))
	r := mySelfValidate(t, port, myOptions(t, f, false))
	c := find(t, r, "SELECT,INSERT on "+f.db+".*")
	if want := fmt.Sprintf("GRANT INSERT ON `%s`.* TO '%s'@'%%';", f.db, f.user); c.Status != validate.Fail || c.Fix != want {
		t.Fatalf("%+v, want %q", c, want)
	}
	for _, fix := range fixes(r) {
		myExec(t, fix)
	}
	allPass(t, mySelfValidate(t, port, myOptions(t, f, false)), "after the fixes")

	// REQUIRE SSL as the user: read from its own SHOW CREATE USER.
	myExec(t, fmt.Sprintf("ALTER USER '%s'@'%%' REQUIRE NONE", f.user))
	r = mySelfValidate(t, port, myOptions(t, f, false))
	c = find(t, r, "require ssl")
	if want := fmt.Sprintf("ALTER USER '%s'@'%%' REQUIRE SSL;", f.user); c.Status != validate.Fail || c.Fix != want {
		t.Fatalf("%+v, want %q", c, want)
	}
	myExec(t, c.Fix)
	allPass(t, mySelfValidate(t, port, myOptions(t, f, false)), "after REQUIRE SSL")
}

// forMariaDB turns setup SQL for RDS into SQL MariaDB runs: the account is
// made with the backend password instead of AWSAuthenticationPlugin.
func forMariaDB(t *testing.T, sql string) string {
	t.Helper()
	const clause = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
	if !strings.Contains(sql, clause) {
		t.Fatalf("no %q in %q", clause, sql)
	}
	return strings.ReplaceAll(sql, clause, "IDENTIFIED BY PASSWORD '"+backendHash(t)+"'")
}

// splitStatements splits SQL the generator wrote (no ; inside literals)
// into statements, dropping comment lines.
func splitStatements(sql string) []string {
	var out []string
	var lines []string
	for _, l := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, s := range strings.Split(strings.Join(lines, "\n"), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ---- the commands ----

// runCLI runs the binary with args and returns stdout, stderr and the
// exit status.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx := testCtx(t, 90*time.Second)
	cmd := exec.CommandContext(ctx, proxyBinary(t), args...)
	cmd.Env = os.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	w.logs.Write(stderr.Bytes())
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// pgUpstreamArgs are run's flags for the emulated Postgres instance.
func pgUpstreamArgs(arn string) []string {
	return []string{"--endpoint", fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()), "--dial-address", w.front.Addr(),
		"--ca-bundle", w.caFile, "--role-arn", arn}
}

func myUpstreamArgs(arn string) []string {
	return []string{"--engine", "mysql", "--endpoint", fmt.Sprintf("%s:%d", w.my.Endpoint(), w.my.Port()), "--dial-address", w.my.Addr(),
		"--ca-bundle", w.caFile, "--role-arn", arn}
}

// TestSetupSQLPostgres: `setup sql` output, run on a fresh database as
// the master user, makes a user that logs in through the proxy and passes
// `validate` both through the proxy and with --admin-dsn; a table created
// afterwards is readable thanks to the default privileges.
func TestSetupSQLPostgres(t *testing.T) {
	w.enter(t)
	user := uniqueName(t, "vsetup")
	dropRoleAtEnd(t, user)
	db := newPGDatabase(t)
	pgExec(t, db, "CREATE SCHEMA app; CREATE TABLE app.before (id serial PRIMARY KEY)")
	reqArgs := []string{"--require", "app.*:SELECT,INSERT", "--require-sequences", "app.*:USAGE,SELECT"}
	out, stderr, code := runCLI(t, append([]string{"setup", "sql", "--db-user", user, "--database", db}, reqArgs...)...)
	if code != 0 || !strings.Contains(out, "CREATE USER "+user+" WITH LOGIN;") || !strings.Contains(out, "GRANT rds_iam TO "+user+";") {
		t.Fatalf("setup sql: exit %d\n%s\n%s", code, out, stderr)
	}
	pgExec(t, db, out)
	pgExec(t, db, "CREATE TABLE app.after (id serial PRIMARY KEY)") // as the master user, after the setup

	arn := iamRoleFor(t, user)
	args := append(append([]string{"validate", "--db-user", user, "--database", db}, pgUpstreamArgs(arn)...), reqArgs...)
	out, stderr, code = runCLI(t, args...)
	if code != 0 || strings.Contains(out, "fail") || strings.Contains(out, "warn") || !strings.Contains(out, "ok    IAM login") {
		t.Fatalf("validate through the proxy: exit %d\n%s\n%s", code, out, stderr)
	}
	reqFile := filepath.Join(t.TempDir(), "grants.yaml")
	if err := os.WriteFile(reqFile, []byte("require:\n  - \"app.*:SELECT,INSERT\"\nrequire_sequences:\n  - \"app.*:USAGE,SELECT\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runCLI(t, "validate", "--admin-dsn", w.pg.ConnString("postgres", db), "--db-user", user, "--format", "json", "--requirements", reqFile)
	var js struct {
		OK     bool             `json:"ok"`
		Checks []validate.Check `json:"checks"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || !js.OK || len(js.Checks) < 10 {
		t.Fatalf("validate --admin-dsn --format json: exit %d\n%s\n%s", code, out, stderr)
	}

	port := startProxy(t, func(c *launch.Config) { c.RoleARN = arn })
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable", port, user, db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "INSERT INTO app.after DEFAULT VALUES"); err != nil {
		t.Fatalf("insert into a table created after the setup: %v", err)
	}

	// A failing validate exits 1 and prints the fix.
	pgExec(t, db, "REVOKE USAGE ON SCHEMA app FROM "+user)
	out, _, code = runCLI(t, append([]string{"validate", "--admin-dsn", w.pg.ConnString("postgres", db), "--db-user", user}, reqArgs...)...)
	if code != 1 || !strings.Contains(out, "      fix: GRANT USAGE ON SCHEMA app TO "+user+";") {
		t.Fatalf("validate after REVOKE: exit %d\n%s", code, out)
	}
}

// TestSetupSQLMySQL: `setup sql --engine mysql` output, with its plugin
// clause swapped for the backend password (MariaDB has no
// AWSAuthenticationPlugin), makes an account that logs in through the
// proxy and passes validate through the proxy; with the plugin name
// written where validate reads it, it passes --admin-dsn too.
func TestSetupSQLMySQL(t *testing.T) {
	w.enter(t)
	db := newMyDatabase(t)
	user := uniqueName(t, "vsetup")
	dropAccountAtEnd(t, user)
	reqArgs := []string{"--require", db + ".*:SELECT,INSERT,UPDATE,DELETE"}
	out, stderr, code := runCLI(t, append([]string{"setup", "sql", "--engine", "mysql", "--db-user", user}, reqArgs...)...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;", user)) {
		t.Fatalf("setup sql: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, stmt := range splitStatements(forMariaDB(t, out)) {
		myExec(t, stmt)
	}
	w.setMySQLIAMUser(t, user, true)
	arn := iamRoleFor(t, user)
	args := append(append([]string{"validate", "--db-user", user, "--database", db}, myUpstreamArgs(arn)...), reqArgs...)
	out, stderr, code = runCLI(t, args...)
	if code != 0 || strings.Contains(out, "fail") || !strings.Contains(out, "ok    IAM login") {
		t.Fatalf("validate through the proxy: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("validate through the proxy:\n%s", out)
	markAWSPlugin(t, user)
	out, stderr, code = runCLI(t, append([]string{"validate", "--engine", "mysql", "--admin-dsn", w.My.SocketDSN("root", "", ""), "--db-user", user}, reqArgs...)...)
	if code != 0 || strings.Contains(out, "fail") {
		t.Fatalf("validate --admin-dsn: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestValidateLoginFails: when the IAM login itself fails, validate says
// so, points at --admin-dsn, and exits 1.
func TestValidateLoginFails(t *testing.T) {
	w.enter(t)
	arn := iamRoleFor(t, plainUser)
	out, stderr, code := runCLI(t, append([]string{"validate", "--db-user", plainUser, "--database", appDB}, pgUpstreamArgs(arn)...)...)
	if code != 1 || !strings.Contains(out, "fail  IAM login") || !strings.Contains(out, "--admin-dsn") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	// And --admin-dsn names the step: plain_user is not in rds_iam.
	out, _, code = runCLI(t, "validate", "--admin-dsn", w.pg.ConnString("postgres", appDB), "--db-user", plainUser)
	if code != 1 || !strings.Contains(out, "fix: GRANT rds_iam TO plain_user;") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
