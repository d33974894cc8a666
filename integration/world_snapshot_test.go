package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// worldState is everything about the shared world a test can change and
// a later test would notice: the emulated AWS, the MySQL front's IAM
// users, the process environment and working directory (the AWS chain
// reads them), and the two databases' roles, grants, databases, tables,
// settings and the rows of the items tables. Comparing the state before
// and after a test names what it left changed (see world.enter).
type worldState struct {
	aws        emulator.State
	myIAMUsers []string
	env        map[string]string
	cwd        string
	// pg and my are query results as lines, by what they show.
	pg, my map[string][]string
}

// pgStateQueries read what tests change in PostgreSQL, each row one
// line of text. Temporary schemas and TOAST are left out: sessions
// create them and they stay behind, harmlessly, in the catalog.
var pgStateQueries = []struct{ what, db, sql string }{
	{"roles", "postgres", `SELECT format('%s super=%s login=%s createrole=%s createdb=%s replication=%s bypassrls=%s connlimit=%s config=%s',
		rolname, rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolconnlimit, rolconfig)
		FROM pg_roles WHERE rolname !~ '^pg_'`},
	{"role memberships", "postgres", `SELECT format('%s in %s', m.rolname, r.rolname)
		FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles r ON r.oid = a.roleid`},
	{"databases", "postgres", `SELECT format('%s acl=%s allowconn=%s connlimit=%s', datname, datacl, datallowconn, datconnlimit) FROM pg_database`},
	{"settings", "postgres", `SELECT format('%s=%s (%s)', name, setting, source) FROM pg_settings WHERE source NOT IN ('default', 'client', 'session', 'override')`},
	{"role and database settings", "postgres", `SELECT format('%s %s %s', setdatabase, setrole, setconfig) FROM pg_db_role_setting`},
	{"appdb schemas", appDB, `SELECT format('%s acl=%s', nspname, nspacl) FROM pg_namespace WHERE nspname !~ '^pg_(toast|temp_|toast_temp_)'`},
	{"appdb relations", appDB, `SELECT format('%s.%s kind=%s acl=%s', n.nspname, c.relname, c.relkind, c.relacl)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'`},
	{"appdb default privileges", appDB, `SELECT format('%s %s %s %s', defaclrole::regrole, defaclnamespace, defaclobjtype, defaclacl) FROM pg_default_acl`},
	{"appdb items", appDB, `SELECT format('%s %s', id, name) FROM items`},
}

// myStateQueries are pgStateQueries for MariaDB. Password hashes are
// left out (the backend password's hash is a credential).
var myStateQueries = []struct{ what, sql string }{
	{"users", "SELECT CONCAT_WS(' ', User, Host, plugin, ssl_type, is_role) FROM mysql.user"},
	{"roles granted", "SELECT CONCAT_WS(' ', User, Host, Role, Admin_option) FROM mysql.roles_mapping"},
	{"global privileges", "SELECT CONCAT_WS(' ', GRANTEE, PRIVILEGE_TYPE, IS_GRANTABLE) FROM information_schema.USER_PRIVILEGES"},
	{"database privileges", "SELECT CONCAT_WS(' ', GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE) FROM information_schema.SCHEMA_PRIVILEGES"},
	{"table privileges", "SELECT CONCAT_WS(' ', GRANTEE, TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE) FROM information_schema.TABLE_PRIVILEGES"},
	{"column privileges", "SELECT CONCAT_WS(' ', GRANTEE, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE) FROM information_schema.COLUMN_PRIVILEGES"},
	{"databases", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"},
	{"tables", "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"},
	{"global variables", "SELECT CONCAT(VARIABLE_NAME, '=', VARIABLE_VALUE) FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME NOT LIKE 'GTID\\_%'"},
	{"appdb items", "SELECT CONCAT(id, ' ', name) FROM appdb.items"},
}

// snapshot reads the world's state.
func (wd *world) snapshot(ctx context.Context) (worldState, error) {
	s := worldState{aws: wd.aws.AWS.State(), myIAMUsers: wd.my.IAMUsers(), env: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); k != serialMark {
			s.env[k] = v
		}
	}
	var err error
	if s.cwd, err = os.Getwd(); err != nil {
		return s, fmt.Errorf("working directory: %w", err)
	}
	var pgErr, myErr error
	var wg sync.WaitGroup
	wg.Go(func() { s.pg, pgErr = wd.pgState(ctx) })
	wg.Go(func() { s.my, myErr = wd.myState(ctx) })
	wg.Wait()
	return s, errors.Join(pgErr, myErr)
}

func (wd *world) pgState(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	conns := map[string]*pgconn.PgConn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	for _, q := range pgStateQueries {
		c := conns[q.db]
		if c == nil {
			var err error
			if c, err = pgconn.Connect(ctx, wd.pg.ConnString("postgres", q.db)); err != nil {
				return nil, fmt.Errorf("postgres state: %w", err)
			}
			conns[q.db] = c
		}
		res := c.ExecParams(ctx, q.sql, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return nil, fmt.Errorf("postgres state, %s: %w", q.what, res.Err)
		}
		lines := make([]string, 0, len(res.Rows))
		for _, r := range res.Rows {
			lines = append(lines, string(r[0]))
		}
		slices.Sort(lines)
		out[q.what] = lines
	}
	return out, nil
}

func (wd *world) myState(ctx context.Context) (map[string][]string, error) {
	db, err := sql.Open("mysql", wd.My.SocketDSN("root", "", ""))
	if err != nil {
		return nil, fmt.Errorf("mariadb state: %w", err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, q := range myStateQueries {
		rows, err := db.QueryContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("mariadb state, %s: %w", q.what, err)
		}
		var lines []string
		for rows.Next() {
			var l sql.NullString
			if err := rows.Scan(&l); err != nil {
				rows.Close()
				return nil, fmt.Errorf("mariadb state, %s: %w", q.what, err)
			}
			lines = append(lines, l.String)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("mariadb state, %s: %w", q.what, err)
		}
		slices.Sort(lines)
		out[q.what] = lines
	}
	return out, nil
}

// changesFrom names each difference between was and s, one line each,
// in words a test's author can act on. Principals, OIDC providers and SSO
// grants that s has and was lacks are not changes: a test may add its own
// (the emulator cannot delete them), as long as it changes none that
// existed before it. No secret is named: environment variables by name
// only.
func (s worldState) changesFrom(was worldState) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	a, b := was.aws, s.aws
	if a.ClockOffset != b.ClockOffset {
		add("emulator: clock offset %v, was %v", b.ClockOffset, a.ClockOffset)
	}
	if a.SessionDuration != b.SessionDuration {
		add("emulator: session duration %v, was %v", b.SessionDuration, a.SessionDuration)
	}
	for _, e := range unionKeys(a.Faults, b.Faults) {
		fa, inA := a.Faults[e]
		fb, inB := b.Faults[e]
		switch {
		case !inA:
			add("emulator: fault on %s left injected (%s)", e, faultText(fb))
		case !inB:
			add("emulator: fault on %s cleared (was %s)", e, faultText(fa))
		case fa != fb:
			add("emulator: fault on %s is %s, was %s", e, faultText(fb), faultText(fa))
		}
	}
	if a.InstanceProfile != b.InstanceProfile {
		add("emulator: instance profile %q, was %q", b.InstanceProfile, a.InstanceProfile)
	} else if a.InstanceCredentials != b.InstanceCredentials {
		add("emulator: instance metadata would next hand out credentials lasting %v, was %v (rotate them)", b.InstanceCredentials, a.InstanceCredentials)
	}
	if a.ContainerRole != b.ContainerRole || a.ContainerTokenDigest != b.ContainerTokenDigest {
		add("emulator: container credentials for role %q (token %s), was %q (token %s)", b.ContainerRole, orNone(b.ContainerTokenDigest), a.ContainerRole, orNone(a.ContainerTokenDigest))
	} else if a.ContainerCredentials != b.ContainerCredentials {
		add("emulator: the container endpoint would next hand out credentials lasting %v, was %v", b.ContainerCredentials, a.ContainerCredentials)
	}
	for _, arn := range slices.Sorted(maps.Keys(a.Users)) {
		if p, ok := b.Users[arn]; !ok {
			add("emulator: user %s is gone", arn)
		} else if !reflect.DeepEqual(p, a.Users[arn]) {
			add("emulator: user %s has another policy: %+v, was %+v", arn, p, a.Users[arn])
		}
	}
	for _, arn := range slices.Sorted(maps.Keys(a.Roles)) {
		r, ok := b.Roles[arn]
		switch {
		case !ok:
			add("emulator: role %s is gone", arn)
		case !reflect.DeepEqual(r.Policy, a.Roles[arn].Policy):
			add("emulator: role %s has another policy: %+v, was %+v", arn, r.Policy, a.Roles[arn].Policy)
		case !reflect.DeepEqual(r.Trust, a.Roles[arn].Trust):
			add("emulator: role %s has another trust policy: %+v, was %+v", arn, r.Trust, a.Roles[arn].Trust)
		}
	}
	for _, iss := range slices.Sorted(maps.Keys(a.OIDCProviders)) {
		if got, ok := b.OIDCProviders[iss]; !ok || !slices.Equal(got, a.OIDCProviders[iss]) {
			add("emulator: OIDC provider %s has audiences %v, was %v", iss, got, a.OIDCProviders[iss])
		}
	}
	if missing := lacking(b.SSOGrants, a.SSOGrants); len(missing) > 0 {
		add("emulator: SSO grants %v are gone", missing)
	}
	dbsA, dbsB := dbsByAddress(a.DBs), dbsByAddress(b.DBs)
	for _, addr := range unionKeys(dbsA, dbsB) {
		da, inA := dbsA[addr]
		db, inB := dbsB[addr]
		switch {
		case !inA:
			add("emulator: DB %s left listed (a front left open): %+v", addr, db)
		case !inB:
			add("emulator: DB %s is gone (a front of the world closed)", addr)
		case da != db:
			add("emulator: DB %s is %+v, was %+v (an IAM auth switch or cluster left changed)", addr, db, da)
		}
	}
	if !slices.Equal(was.myIAMUsers, s.myIAMUsers) {
		add("emulator: the MySQL front's IAM users are %v, were %v", s.myIAMUsers, was.myIAMUsers)
	}
	for _, k := range unionKeys(was.env, s.env) {
		va, inA := was.env[k]
		vb, inB := s.env[k]
		switch {
		case !inA:
			add("environment: %s left set", k)
		case !inB:
			add("environment: %s left unset", k)
		case va != vb:
			add("environment: %s left changed", k)
		}
	}
	if was.cwd != s.cwd {
		add("working directory %s, was %s", s.cwd, was.cwd)
	}
	out = append(out, linesChanged("postgres", was.pg, s.pg)...)
	out = append(out, linesChanged("mariadb", was.my, s.my)...)
	return out
}

// linesChanged names the lines added to and removed from each of a
// database's state queries.
func linesChanged(db string, was, now map[string][]string) []string {
	var out []string
	for _, what := range unionKeys(was, now) {
		for _, l := range lacking(now[what], was[what]) {
			out = append(out, fmt.Sprintf("%s %s: %s is gone", db, what, l))
		}
		for _, l := range lacking(was[what], now[what]) {
			out = append(out, fmt.Sprintf("%s %s: %s was added", db, what, l))
		}
	}
	return out
}

// lacking is each of want (sorted) that have (sorted) lacks, counting
// repeats.
func lacking(have, want []string) []string {
	var out []string
	i := 0
	for _, x := range want {
		for i < len(have) && have[i] < x {
			i++
		}
		if i < len(have) && have[i] == x {
			i++
			continue
		}
		out = append(out, x)
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func faultText(f emulator.Fault) string {
	return fmt.Sprintf("status %d %s, delay %v, times %d", f.Status, f.Code, f.Delay, f.Times)
}

// dbsByAddress keys DBs by endpoint:port (two fronts never share one).
func dbsByAddress(dbs []emulator.DBState) map[string]emulator.DBState {
	m := make(map[string]emulator.DBState, len(dbs))
	for _, d := range dbs {
		m[fmt.Sprintf("%s:%d", d.Endpoint, d.Port)] = d
	}
	return m
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// snapshotTimeout bounds one reading of the world's state.
const snapshotTimeout = 30 * time.Second

// TestWorldStateSeesEveryChange: each kind of change a test can make to
// the shared world shows in changesFrom, named; a principal the test adds
// for itself does not; and when the test ends the helpers and cleanups
// have undone it all (w.enter checks that).
func TestWorldStateSeesEveryChange(t *testing.T) {
	w.enter(t)
	before := w.readState(t)
	ctx := testCtx(t, time.Minute)

	w.setClockOffset(t, 20*time.Minute)
	w.setSessionDuration(t, 20*time.Second)
	w.injectFault(t, emulator.FaultSTS, emulator.Throttling())
	w.setInstanceProfile(t, "")
	w.aws.AWS.AddRole("state-pod", emulator.Policy{})
	w.setContainerCredentials(t, "state-pod", "state-token")
	w.setRolePolicy(t, "app", emulator.Policy{})
	w.setIAMAuth(t, w.front, false)
	w.setMySQLIAMUser(t, "state_user", true)
	w.aws.AWS.AddUser("state-own-user", emulator.Policy{})
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Chdir(t.TempDir())
	front, err := w.aws.AWS.StartPostgres(w.aws.CA, emulator.PostgresOptions{
		Endpoint: "state.c0ffee123456.us-east-1.rds.amazonaws.com", ResourceID: "db-STATE0001", Backend: w.pg.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	t.Cleanup(func() { w.pg.Exec(context.Background(), "DROP ROLE IF EXISTS state_role") })
	if err := w.pg.Exec(ctx, "CREATE ROLE state_role"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.pg.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name = 'state-row'") })
	if err := w.pg.ExecIn(ctx, appDB, "INSERT INTO items (name) VALUES ('state-row')"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.My.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name = 'state-row'")
		w.My.Exec(context.Background(), "DROP USER IF EXISTS 'state_user'@'%'")
	})
	if err := w.My.ExecIn(ctx, appDB, "INSERT INTO items (name) VALUES ('state-row')", "CREATE USER 'state_user'@'%'"); err != nil {
		t.Fatal(err)
	}

	changes := strings.Join(w.readState(t).changesFrom(before), "\n")
	t.Logf("changes:\n%s", changes)
	for _, want := range []string{
		"emulator: clock offset 20m0s, was 0s",
		"emulator: session duration 20s, was 1h0m0s",
		"emulator: fault on sts left injected",
		`emulator: instance profile "", was "app"`,
		`emulator: container credentials for role "state-pod"`,
		"emulator: role arn:aws:iam::123456789012:role/app has another policy",
		"emulator: DB emulated-pg.c0ffee123456.us-east-1.rds.amazonaws.com:5432 is {", "IAMAuth:false",
		"emulator: DB state.c0ffee123456.us-east-1.rds.amazonaws.com:5432 left listed (a front left open)",
		"emulator: the MySQL front's IAM users are [app_user state_user unlisted_user]",
		"environment: AWS_REGION left changed",
		"working directory ",
		"postgres roles: state_role super=f login=f",
		"postgres appdb items: ", "state-row was added",
		"mariadb users: state_user % ",
		"mariadb appdb items: ",
	} {
		if !strings.Contains(changes, want) {
			t.Errorf("the changes do not say %q", want)
		}
	}
	if strings.Contains(changes, "state-own-user") || strings.Contains(changes, "state-pod:") {
		t.Error("a principal the test added for itself counts as a change")
	}
	if strings.Contains(changes, "state-token") {
		t.Error("the changes show the container credentials' token")
	}
}
