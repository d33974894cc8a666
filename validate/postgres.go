package validate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/jackc/pgx/v5"
)

// DBOptions say whose setup to check and what it needs.
type DBOptions struct {
	// User is the IAM database user. As that user (Admin false) it may be
	// empty: the session's user is checked.
	User string
	// Database is the database whose grants are checked; "" means the
	// connection's. Postgres catalogs are per database, so it must be the
	// connection's own.
	Database string
	// Host is the MySQL account's host part; default "%".
	Host string
	// Require are the privileges needed on tables, RequireSequences on
	// sequences (Postgres). None at all: SELECT on every table of public
	// (Postgres) or of Database (MySQL).
	Require          []Requirement
	RequireSequences []Requirement
	// Admin: the connection is another (admin) user's, inspecting User,
	// who may not be able to log in yet. Otherwise the connection is
	// User's own, made with an IAM token through the proxy, which already
	// proves some steps.
	Admin bool
	// IAMPrincipal is the ARN Aurora DSQL maps the signer by (an assumed
	// role's sessions: the role's ARN); "" when unknown. DSQL only.
	IAMPrincipal string
}

// PGQuerier is what the Postgres checks need: *pgx.Conn or a pgxpool.Pool.
type PGQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgRole is what pg_roles says about the user.
type pgRole struct {
	oid      uint32
	name     string
	canLogin bool
	super    bool
}

// Postgres checks, on a Postgres (RDS or Aurora) database, everything IAM
// login and the application need from the database: the role, LOGIN,
// rds_iam (and not rds_ad), CONNECT, USAGE on each schema, the required
// privileges on every table and sequence, default privileges for future
// ones, and the master-user trap. Each failed check carries the SQL, run
// as the master user, that fixes it.
func Postgres(ctx context.Context, q PGQuerier, o DBOptions) *Report {
	r := &Report{}
	tables, seqs, err := pgRequirements(o.Require, o.RequireSequences)
	if err != nil {
		r.Add(Check{Name: "requirements", Status: Fail, Detail: err.Error()})
		return r
	}
	var db, session string
	if err := q.QueryRow(ctx, "SELECT current_database(), session_user").Scan(&db, &session); err != nil {
		r.Add(Check{Name: "connection", Status: Fail, Detail: fmt.Sprintf("could not query the server: %v", err)})
		return r
	}
	if o.Database != "" && o.Database != db {
		r.Add(Check{Name: "database", Status: Fail, Detail: fmt.Sprintf("connected to database %s, asked to check %s: catalogs are per database, so connect to %s", db, o.Database, o.Database)})
		return r
	}
	user, ok := checkedUser(r, o, session)
	if !ok {
		return r
	}
	role, ok := pgRoleCheck(ctx, q, r, o, user, db, tables, seqs)
	if !ok {
		return r
	}
	u := sqlquote.PGRole(user)

	// LOGIN: without it even a valid token is refused.
	if role.canLogin {
		r.Add(Check{Name: "login", Status: OK, Detail: user + " may log in"})
	} else {
		r.Add(Check{Name: "login", Status: Fail, Detail: user + " has NOLOGIN: RDS refuses it even with a valid token", Fix: "ALTER ROLE " + u + " WITH LOGIN;"})
	}

	// rds_iam: the membership that makes RDS take the password as a token.
	inIAM := false
	if exists, err := pgRoleExists(ctx, q, "rds_iam"); err != nil {
		r.Add(failed("rds_iam membership", err))
	} else if !exists {
		r.Add(Check{Name: "rds_iam membership", Status: Fail, Detail: "there is no role rds_iam: this server is not RDS or Aurora, or IAM database authentication is not available on it"})
	} else if inIAM, err = pgMemberOf(ctx, q, role.oid, "rds_iam"); err != nil {
		r.Add(failed("rds_iam membership", err))
	} else if inIAM {
		r.Add(Check{Name: "rds_iam membership", Status: OK, Detail: user + " is a member of rds_iam"})
	} else {
		r.Add(Check{Name: "rds_iam membership", Status: Fail, Detail: user + " is not a member of rds_iam: RDS checks its password as a password, not as an IAM token", Fix: "GRANT rds_iam TO " + u + ";"})
	}

	// rds_ad: a member of both is refused IAM login.
	if exists, err := pgRoleExists(ctx, q, "rds_ad"); err != nil {
		r.Add(failed("not rds_ad", err))
	} else if !exists {
		r.Add(Check{Name: "not rds_ad", Status: OK, Detail: "there is no role rds_ad"})
	} else if inAD, err := pgMemberOf(ctx, q, role.oid, "rds_ad"); err != nil {
		r.Add(failed("not rds_ad", err))
	} else if inAD {
		r.Add(Check{Name: "not rds_ad", Status: Fail, Detail: user + " is a member of both rds_iam and rds_ad (Kerberos): RDS refuses IAM login for it", Fix: "REVOKE rds_ad FROM " + u + ";"})
	} else {
		r.Add(Check{Name: "not rds_ad", Status: OK, Detail: user + " is not a member of rds_ad"})
	}

	// CONNECT on the database (PUBLIC has it unless revoked).
	var canConnect bool
	if err := q.QueryRow(ctx, "SELECT has_database_privilege($1::oid, current_database(), 'CONNECT')", role.oid).Scan(&canConnect); err != nil {
		r.Add(failed("connect "+db, err))
	} else if canConnect {
		r.Add(Check{Name: "connect " + db, Status: OK, Detail: user + " may connect to " + db})
	} else {
		r.Add(Check{Name: "connect " + db, Status: Fail, Detail: user + " lacks CONNECT on database " + db, Fix: pgGrantConnect(db, user)})
	}

	schemaOIDs := map[string]uint32{}
	for _, s := range schemasOf(tables, seqs) {
		if oid, ok := pgSchemaCheck(ctx, q, r, role, user, s); ok {
			schemaOIDs[s] = oid
		}
	}
	for _, req := range tables {
		if oid, ok := schemaOIDs[req.Schema]; ok {
			pgObjectsCheck(ctx, q, r, role, user, req, oid, pgTables)
		}
	}
	for _, req := range seqs {
		if oid, ok := schemaOIDs[req.Schema]; ok {
			pgObjectsCheck(ctx, q, r, role, user, req, oid, pgSequences)
		}
	}
	for _, req := range tables {
		if oid, ok := schemaOIDs[req.Schema]; ok && req.All() {
			pgDefaultsCheck(ctx, q, r, role, user, req, oid, pgTables)
		}
	}
	for _, req := range seqs {
		if oid, ok := schemaOIDs[req.Schema]; ok && req.All() {
			pgDefaultsCheck(ctx, q, r, role, user, req, oid, pgSequences)
		}
	}
	pgMasterCheck(ctx, q, r, role, user, inIAM)
	return r
}

// failed is a check that could not run because a query failed: a failure,
// since an unchecked step is not a passed one.
func failed(name string, err error) Check {
	return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("could not check: %v", err)}
}

// pgRoleCheck finds the role by its exact name. A missing role's fix is
// the whole setup; a role that differs only in case is named, since
// CREATE USER App_User makes app_user and CREATE USER "App_User" does not.
func pgRoleCheck(ctx context.Context, q PGQuerier, r *Report, o DBOptions, user, db string, tables, seqs []Requirement) (pgRole, bool) {
	var role pgRole
	err := q.QueryRow(ctx, "SELECT oid, rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1", user).
		Scan(&role.oid, &role.name, &role.canLogin, &role.super)
	if err == nil {
		r.Add(Check{Name: "role exists", Status: OK, Detail: "role " + user + " exists"})
		return role, true
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		r.Add(failed("role exists", err))
		return role, false
	}
	var other string
	err = q.QueryRow(ctx, "SELECT rolname FROM pg_roles WHERE lower(rolname) = lower($1) ORDER BY rolname LIMIT 1", user).Scan(&other)
	if err == nil {
		r.Add(Check{Name: "role exists", Status: Fail,
			Detail: fmt.Sprintf("no role %s; did you mean %s? Role names are case-sensitive: connect as %s (--db-user %q), or rename the role", user, other, sqlquote.PGRole(other), other),
			Fix:    "ALTER ROLE " + sqlquote.PGRole(other) + " RENAME TO " + sqlquote.PGRole(user) + ";"})
		return role, false
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		r.Add(failed("role exists", err))
		return role, false
	}
	stmts, serr := postgresSetup(SetupOptions{User: user, Database: db, Require: tables, RequireSequences: seqs})
	c := Check{Name: "role exists", Status: Fail, Detail: "no role " + user}
	if serr == nil {
		c.Fix = strings.Join(stmts, " ")
	}
	r.Add(c)
	return role, false
}

func pgRoleExists(ctx context.Context, q PGQuerier, name string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok)
	return ok, err
}

// pgMemberOf says whether the role is a member of group, directly or
// through other roles. It reads pg_auth_members rather than pg_has_role,
// which calls a superuser a member of every role.
func pgMemberOf(ctx context.Context, q PGQuerier, member uint32, group string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `WITH RECURSIVE m(roleid) AS (
		SELECT roleid FROM pg_auth_members WHERE member = $1::oid
		UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid)
	SELECT EXISTS (SELECT 1 FROM m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $2)`, member, group).Scan(&ok)
	return ok, err
}

// pgSchemaCheck checks USAGE on a schema, without which no table in it
// can be reached whatever its grants.
func pgSchemaCheck(ctx context.Context, q PGQuerier, r *Report, role pgRole, user, schema string) (uint32, bool) {
	name := "usage on schema " + schema
	var oid uint32
	err := q.QueryRow(ctx, "SELECT oid FROM pg_namespace WHERE nspname = $1", schema).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		detail := "no schema " + schema
		var other string
		if q.QueryRow(ctx, "SELECT nspname FROM pg_namespace WHERE lower(nspname) = lower($1) LIMIT 1", schema).Scan(&other) == nil {
			detail += "; did you mean " + other + "?"
		}
		r.Add(Check{Name: name, Status: Fail, Detail: detail})
		return 0, false
	}
	if err != nil {
		r.Add(failed(name, err))
		return 0, false
	}
	var usage bool
	if err := q.QueryRow(ctx, "SELECT has_schema_privilege($1::oid, $2::oid, 'USAGE')", role.oid, oid).Scan(&usage); err != nil {
		r.Add(failed(name, err))
	} else if usage {
		r.Add(Check{Name: name, Status: OK, Detail: user + " has USAGE on schema " + schema})
	} else {
		r.Add(Check{Name: name, Status: Fail, Detail: user + " lacks USAGE on schema " + schema + ": no object in it is reachable", Fix: pgGrantUsage(schema, user)})
	}
	return oid, true
}

// pgKind is tables or sequences, as the catalogs and GRANT name them.
type pgKind struct {
	plural   string   // "tables"
	grant    string   // GRANT ... ON <grant> / ALL <grant>S IN SCHEMA
	relkinds []string // pg_class.relkind values
	hasPriv  string   // has_table_privilege / has_sequence_privilege
	defACL   string   // pg_default_acl.defaclobjtype
}

var (
	pgTables    = pgKind{"tables", "TABLE", []string{"r", "p", "v", "m", "f"}, "has_table_privilege", "r"}
	pgSequences = pgKind{"sequences", "SEQUENCE", []string{"S"}, "has_sequence_privilege", "S"}
)

// pgObjectsCheck checks req's privileges on each of its objects and names
// the ones that lack some; the fix grants exactly the missing privileges.
func pgObjectsCheck(ctx context.Context, q PGQuerier, r *Report, role pgRole, user string, req Requirement, nsOID uint32, k pgKind) {
	name := strings.Join(req.Privileges, ",") + " on " + k.plural + " in " + req.Schema
	if !req.All() {
		name = strings.Join(req.Privileges, ",") + " on " + req.Schema + "." + req.Object
	}
	sql := `SELECT c.relname, p.priv FROM pg_class c CROSS JOIN unnest($3::text[]) AS p(priv)
		WHERE c.relnamespace = $2::oid AND c.relkind::text = ANY ($4::text[]) AND ($5::text IS NULL OR c.relname = $5)
		AND NOT ` + k.hasPriv + `($1::oid, c.oid, p.priv) ORDER BY 1, 2`
	var object any
	if !req.All() {
		object = req.Object
	}
	var count int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM pg_class c WHERE c.relnamespace = $1::oid AND c.relkind::text = ANY ($2::text[]) AND ($3::text IS NULL OR c.relname = $3)`,
		nsOID, k.relkinds, object).Scan(&count); err != nil {
		r.Add(failed(name, err))
		return
	}
	if count == 0 {
		if req.All() {
			r.Add(Check{Name: name, Status: OK, Detail: "no " + k.plural + " in " + req.Schema + " yet"})
		} else {
			r.Add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("no %s %s.%s", strings.ToLower(k.grant), req.Schema, req.Object)})
		}
		return
	}
	rows, err := q.Query(ctx, sql, role.oid, nsOID, req.Privileges, k.relkinds, object)
	if err != nil {
		r.Add(failed(name, err))
		return
	}
	objects, missing, err := groupPrivileges(rows) // missing: object -> privileges
	if err != nil {
		r.Add(failed(name, err))
		return
	}
	var privs []string
	for _, obj := range objects {
		for _, priv := range missing[obj] {
			if !slices.Contains(privs, priv) {
				privs = append(privs, priv)
			}
		}
	}
	if len(objects) == 0 {
		detail := fmt.Sprintf("%s has %s on all %d %s in %s", user, strings.Join(req.Privileges, ", "), count, k.plural, req.Schema)
		if !req.All() {
			detail = fmt.Sprintf("%s has %s on %s.%s", user, strings.Join(req.Privileges, ", "), req.Schema, req.Object)
		}
		r.Add(Check{Name: name, Status: OK, Detail: detail})
		return
	}
	// Keep the privileges in the requirement's order for the fix.
	ordered := slices.DeleteFunc(slices.Clone(req.Privileges), func(p string) bool { return !slices.Contains(privs, p) })
	var parts []string
	for i, obj := range objects {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(objects)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", obj, strings.Join(missing[obj], ", ")))
	}
	r.Add(Check{Name: name, Status: Fail,
		Detail: fmt.Sprintf("%s lacks privileges on %d of %d %s in %s: %s", user, len(objects), count, k.plural, req.Schema, strings.Join(parts, ", ")),
		Fix:    pgGrant(req, ordered, k.grant, user)})
}

// groupPrivileges reads rows of (name, privilege) into each name's
// privileges, the names in the order the rows first give them, for
// messages and fixes that follow the catalog's order.
func groupPrivileges(rows pgx.Rows) (names []string, privs map[string][]string, err error) {
	defer rows.Close()
	privs = map[string][]string{}
	for rows.Next() {
		var name, priv string
		if err := rows.Scan(&name, &priv); err != nil {
			return nil, nil, err
		}
		if _, seen := privs[name]; !seen {
			names = append(names, name)
		}
		privs[name] = append(privs[name], priv)
	}
	return names, privs, rows.Err()
}

// pgDefaultsCheck warns when tables (or sequences) created later in the
// schema will not carry req's privileges: the application works today and
// breaks after the next migration.
func pgDefaultsCheck(ctx context.Context, q PGQuerier, r *Report, role pgRole, user string, req Requirement, nsOID uint32, k pgKind) {
	name := "default privileges for future " + k.plural + " in " + req.Schema
	rows, err := q.Query(ctx, `SELECT pg_get_userbyid(d.defaclrole), a.privilege_type
		FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
		WHERE d.defaclobjtype::text = $3 AND d.defaclnamespace IN (0, $2::oid) AND a.grantee IN ($1::oid, 0)`,
		role.oid, nsOID, k.defACL)
	if err != nil {
		r.Add(failed(name, err))
		return
	}
	creators, byCreator, err := groupPrivileges(rows)
	if err != nil {
		r.Add(failed(name, err))
		return
	}
	var covered []string
	for _, c := range creators {
		if !slices.ContainsFunc(req.Privileges, func(p string) bool { return !slices.Contains(byCreator[c], p) }) {
			covered = append(covered, c)
		}
	}
	if len(covered) > 0 {
		r.Add(Check{Name: name, Status: OK, Detail: fmt.Sprintf("%s that %s create%s in %s will grant %s to %s", k.plural,
			strings.Join(covered, ", "), map[bool]string{true: "", false: "s"}[len(covered) > 1], req.Schema, strings.Join(req.Privileges, ", "), user)})
		return
	}
	r.Add(Check{Name: name, Status: Warn,
		Detail: fmt.Sprintf("no default privileges grant %s on new %s in %s to %s: %s created later will need their own GRANT (run the fix as the role that creates them)",
			strings.Join(req.Privileges, ", "), k.plural, req.Schema, user, k.plural),
		Fix: pgDefaultPrivileges(req.Schema, req.Privileges, k.grant+"S", user)})
}

// pgMasterCheck warns about the master-user trap: once the master user (a
// superuser, or rds_superuser on RDS) is in rds_iam, RDS accepts only IAM
// tokens for it and its password stops working, which locks out whoever
// relied on it.
func pgMasterCheck(ctx context.Context, q PGQuerier, r *Report, role pgRole, user string, inIAM bool) {
	const name = "master user not in rds_iam"
	privileged := role.super
	why := "a superuser"
	if !privileged {
		exists, err := pgRoleExists(ctx, q, "rds_superuser")
		if err != nil {
			r.Add(failed(name, err))
			return
		}
		if exists {
			if privileged, err = pgMemberOf(ctx, q, role.oid, "rds_superuser"); err != nil {
				r.Add(failed(name, err))
				return
			}
			why = "a member of rds_superuser (the master user, or one like it)"
		}
	}
	switch {
	case !privileged:
		r.Add(Check{Name: name, Status: OK, Detail: user + " is not a superuser or rds_superuser"})
	case !inIAM:
		r.Add(Check{Name: name, Status: OK, Detail: user + " is " + why + " but not in rds_iam: its password still works"})
	default:
		r.Add(Check{Name: name, Status: Warn,
			Detail: user + " is " + why + " and a member of rds_iam: RDS now accepts only IAM tokens for it and its password no longer works; use a separate IAM user for applications",
			Fix:    "REVOKE rds_iam FROM " + sqlquote.PGRole(user) + ";"})
	}
}

// checkedUser is the role a database check is about: --db-user when
// connected as an admin, else the session's own (which --db-user must
// then name, if given). It reports the failure to r when there is none.
func checkedUser(r *Report, o DBOptions, session string) (string, bool) {
	user := o.User
	if !o.Admin {
		if user != "" && user != session {
			r.Add(Check{Name: "role exists", Status: Fail, Detail: fmt.Sprintf("connected as %s, not %s", session, user)})
			return "", false
		}
		user = session
	}
	if user == "" {
		r.Add(Check{Name: "role exists", Status: Fail, Detail: "no user to check: name it (--db-user)"})
		return "", false
	}
	return user, true
}
