package validate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// DSQLMappingsView is the catalog where Aurora DSQL lists its AWS IAM GRANT
// mappings, one row per (pg_role_name, arn).
const DSQLMappingsView = "sys.iam_pg_role_mappings"

// dsqlNoSequences is what a check that needs sequences says on DSQL,
// with what to use instead: DSQL has no identity columns either.
const dsqlNoSequences = "Aurora DSQL has no sequences (and no SERIAL or identity columns): nothing to grant; make keys with gen_random_uuid() (a uuid column DEFAULT gen_random_uuid())"

// dsqlMissingPrivileges are privileges an application may ask for whose
// feature DSQL lacks, each with what DSQL says instead.
var dsqlMissingPrivileges = map[string]string{
	"TEMPORARY": "Aurora DSQL has no temporary tables: use an ordinary table the application cleans up (or a CTE within the query)",
	"TEMP":      "Aurora DSQL has no temporary tables: use an ordinary table the application cleans up (or a CTE within the query)",
	"TRIGGER":   "Aurora DSQL has no triggers: do the work in the application's transaction",
}

// DSQL checks, on an Aurora DSQL cluster, what a role other than admin
// needs: the role and LOGIN; its AWS IAM GRANT mapping to the principal
// that signs tokens (o.IAMPrincipal, a role's ARN for an assumed role's
// sessions), read from sys.iam_pg_role_mappings; USAGE on each schema and
// the privileges on the app's tables. DSQL has no rds_iam (the mapping is
// what makes a token count), no sequences and no temporary tables: a
// requirement for them fails with the feature named and what to use
// instead. admin is DSQL's own role, which needs none of it.
func DSQL(ctx context.Context, q PGQuerier, o DBOptions) *Report {
	r := &Report{}
	tableReqs, missing := dsqlSplitRequirements(o.Require)
	for _, m := range missing {
		r.Add(m)
	}
	for _, s := range o.RequireSequences {
		r.Add(Check{Name: "sequences in " + s.Schema, Status: Fail, Detail: dsqlNoSequences,
			Fix: "drop the sequence requirement (--require-sequences / require_sequences)"})
	}
	tables, _, err := pgRequirements(tableReqs, nil)
	if len(o.Require) > 0 && len(tableReqs) == 0 {
		tables = nil // only missing features were asked for: no default SELECT check
	}
	if err != nil {
		r.Add(Check{Name: "requirements", Status: Fail, Detail: err.Error()})
		return r
	}
	var db, session string
	if err := q.QueryRow(ctx, "SELECT current_database(), session_user").Scan(&db, &session); err != nil {
		r.Add(Check{Name: "connection", Status: Fail, Detail: fmt.Sprintf("could not query the server: %v", err)})
		return r
	}
	if o.Database != "" && o.Database != "postgres" {
		r.Add(Check{Name: "database", Status: Fail, Detail: "--database " + o.Database + ": an Aurora DSQL cluster has one database, postgres"})
		return r
	}
	user, ok := checkedUser(r, o, session)
	if !ok {
		return r
	}
	if user == "admin" {
		r.Add(Check{Name: "role exists", Status: OK, Detail: "admin is Aurora DSQL's own role: it logs in with a dsql:DbConnectAdmin token and needs no mapping or grants"})
		return r
	}
	role, ok := dsqlRoleCheck(ctx, q, r, o, user, tables)
	if !ok {
		return r
	}
	u := sqlquote.PGRole(user)
	if role.canLogin {
		r.Add(Check{Name: "login", Status: OK, Detail: user + " may log in"})
	} else {
		r.Add(Check{Name: "login", Status: Fail, Detail: user + " has NOLOGIN: DSQL refuses it even with a valid token", Fix: "ALTER ROLE " + u + " WITH LOGIN;"})
	}
	dsqlMappingCheck(ctx, q, r, o, user)
	schemaOIDs := map[string]uint32{}
	for _, s := range schemasOf(tables) {
		if oid, ok := pgSchemaCheck(ctx, q, r, role, user, s); ok {
			schemaOIDs[s] = oid
		}
	}
	for _, req := range tables {
		if oid, ok := schemaOIDs[req.Schema]; ok {
			pgObjectsCheck(ctx, q, r, role, user, req, oid, pgTables)
		}
	}
	return r
}

// dsqlSplitRequirements takes out of the table requirements the
// privileges whose feature DSQL lacks, and returns a failed check for
// each such feature, once.
func dsqlSplitRequirements(reqs []Requirement) ([]Requirement, []Check) {
	var out []Requirement
	var checks []Check
	seen := map[string]bool{}
	for _, req := range reqs {
		keep := req
		keep.Privileges = nil
		for _, p := range req.Privileges {
			why, missing := dsqlMissingPrivileges[strings.ToUpper(p)]
			if !missing {
				keep.Privileges = append(keep.Privileges, p)
				continue
			}
			if !seen[why] {
				seen[why] = true
				checks = append(checks, Check{Name: strings.ToUpper(p) + " in " + req.Schema, Status: Fail, Detail: why,
					Fix: "drop " + strings.ToUpper(p) + " from the requirement"})
			}
		}
		if len(keep.Privileges) > 0 {
			out = append(out, keep)
		}
	}
	return out, checks
}

// dsqlRoleCheck finds the role; a missing one's fix is DSQL's setup (the
// role, its mapping, the grants).
func dsqlRoleCheck(ctx context.Context, q PGQuerier, r *Report, o DBOptions, user string, tables []Requirement) (pgRole, bool) {
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
	c := Check{Name: "role exists", Status: Fail, Detail: "no role " + user + " (role names are case-sensitive)"}
	if stmts, serr := dsqlSetup(SetupOptions{User: user, Require: tables, IAMPrincipal: o.IAMPrincipal}); serr == nil {
		c.Fix = "as admin: " + strings.Join(stmts, " ")
	}
	r.Add(c)
	return role, false
}

// dsqlMappingCheck reads the role's AWS IAM GRANT mappings and checks
// that the signing principal is among them: without it DSQL refuses the
// role's tokens whatever the policy allows.
func dsqlMappingCheck(ctx context.Context, q PGQuerier, r *Report, o DBOptions, user string) {
	const name = "AWS IAM GRANT mapping"
	principal := o.IAMPrincipal
	grant := "AWS IAM GRANT " + sqlquote.PGRole(user) + " TO '" + strings.ReplaceAll(orPlaceholder(principal), "'", "''") + "';"
	rows, err := q.Query(ctx, "SELECT arn FROM "+DSQLMappingsView+" WHERE pg_role_name = $1 ORDER BY arn", user)
	var arns []string
	if err == nil {
		arns, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && (pe.Code == "42501" || pe.Code == "42P01") && !o.Admin {
			// Not readable as the role itself; the login it just made
			// with a DbConnect token is the proof.
			r.Add(Check{Name: name, Status: OK, Detail: fmt.Sprintf("%s logged in with a dsql:DbConnect token, so it is mapped to the signer (%s is not readable as %s: %s)", user, DSQLMappingsView, user, pe.Message)})
			return
		}
		r.Add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("could not read %s: %v", DSQLMappingsView, err), Fix: "run validate as admin (--admin-dsn through a proxy logged in as admin); the mapping is made by " + grant})
		return
	}
	switch {
	case principal != "" && slices.Contains(arns, principal):
		r.Add(Check{Name: name, Status: OK, Detail: fmt.Sprintf("%s is mapped to %s, the principal that signs tokens", user, principal)})
	case principal == "" && len(arns) > 0:
		r.Add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("%s is mapped to %s; the signing principal is unknown (no AWS credentials?), so whether it is among them is not checked", user, strings.Join(arns, ", ")), Fix: grant})
	case len(arns) == 0:
		r.Add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("no IAM principal is mapped to %s: DSQL refuses its tokens until admin runs AWS IAM GRANT", user), Fix: grant})
	case !o.Admin:
		// The role just logged in with a DbConnect token, so a mapping
		// covers the signer; the ARN validate derived does not match it.
		r.Add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("%s logged in, so it is mapped to the signer, but %s lists %s and not %s, the principal validate expected", user, DSQLMappingsView, strings.Join(arns, ", "), principal)})
	default:
		r.Add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%s is mapped to %s, not to %s, the principal that signs tokens (an assumed role's sessions map by the role's ARN)", user, strings.Join(arns, ", "), principal), Fix: grant})
	}
}

// orPlaceholder is the principal, or the placeholder the fix asks the
// person to replace.
func orPlaceholder(principal string) string {
	if principal == "" {
		return dsqlPrincipalPlaceholder
	}
	return principal
}
