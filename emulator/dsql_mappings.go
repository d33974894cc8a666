package emulator

import (
	"slices"
	"strings"
)

// RoleMappingsSQL is an emulator shim, not something DSQL has: the SQL
// that (re)creates, on the front's backend, the view
// sys.iam_pg_role_mappings with the mappings GrantIAM has made, so that
// code reading DSQL's catalog (validate, doctor) can run against the
// emulator. On real DSQL, AWS IAM GRANT keeps that catalog itself; the
// backend here is a plain PostgreSQL whose server does not know the
// statement, so the emulator keeps the mappings and this writes them out.
//
// The view has the columns of DSQL's catalog that name the mapping (arn,
// pg_role_oid, pg_role_name); iam_oid and the grantor's are left out. It
// is a snapshot: run it again (as a superuser on the backend) after
// GrantIAM or RevokeIAM. SELECT on it is granted to PUBLIC, so a role can
// read its own mappings through the front.
func (d *DSQL) RoleMappingsSQL() string {
	d.mu.Lock()
	var rows []string
	for role, arns := range d.grants {
		for _, arn := range arns {
			rows = append(rows, "("+sqlString(arn)+", "+sqlString(role)+")")
		}
	}
	d.mu.Unlock()
	slices.Sort(rows)
	values := "SELECT NULL::text, NULL::text WHERE false"
	if len(rows) > 0 {
		values = "VALUES " + strings.Join(rows, ", ")
	}
	return "CREATE SCHEMA IF NOT EXISTS sys; " +
		"CREATE OR REPLACE VIEW sys.iam_pg_role_mappings AS SELECT m.arn, r.oid AS pg_role_oid, m.pg_role_name " +
		"FROM (" + values + ") AS m(arn, pg_role_name) LEFT JOIN pg_catalog.pg_roles r ON r.rolname = m.pg_role_name; " +
		"GRANT USAGE ON SCHEMA sys TO PUBLIC; GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;"
}

// sqlString is s as a PostgreSQL string literal (standard_conforming_strings on).
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
