// Package sqlquote writes names and strings into SQL for the texts the
// proxy shows people (fixes, setup scripts): quoted only when they must be,
// so the SQL reads as if written by hand, and always correctly.
package sqlquote

import (
	"regexp"
	"strings"
)

// pgBare is a name Postgres keeps as written when unquoted.
var pgBare = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// pgReserved are the keywords that cannot be a bare name (PostgreSQL's
// reserved keywords, plus the role names with a meaning of their own).
var pgReserved = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization binary both
		case cast check collate collation column concurrently constraint create cross current_catalog current_date
		current_role current_schema current_time current_timestamp current_user default deferrable desc distinct do
		else end except false fetch for foreign freeze from full grant group having ilike in initially inner intersect
		into is isnull join lateral leading left like limit localtime localtimestamp natural not notnull null offset on
		only or order outer overlaps placing primary references returning right select session_user similar some
		symmetric system_user table tablesample then to trailing true union unique user using variadic verbose when
		where window with`) {
		pgReserved[k] = true
	}
}

// PGIdent quotes a Postgres name for SQL only when it must be: the fixes
// read like hand-written SQL (GRANT rds_iam TO app_user;) yet a role named
// "App_User" stays that role and not app_user.
func PGIdent(s string) string {
	if pgBare.MatchString(s) && !pgReserved[s] {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// PGRole is PGIdent for a role name, where public and none also
// mean something else and must be quoted.
func PGRole(s string) string {
	if s == "public" || s == "none" {
		return `"` + s + `"`
	}
	return PGIdent(s)
}

// MySQLIdent backquotes a MySQL name.
func MySQLIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// MySQLString is a MySQL string literal.
func MySQLString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// MySQLAccount is 'user'@'host'.
func MySQLAccount(user, host string) string { return MySQLString(user) + "@" + MySQLString(host) }

// PGString is a Postgres string literal that means the same whatever
// standard_conforming_strings is: with a backslash in s it is an E'...'
// literal with backslashes doubled, else a plain one.
func PGString(s string) string {
	q := strings.ReplaceAll(s, `'`, `''`)
	if !strings.Contains(s, `\`) {
		return "'" + q + "'"
	}
	return "E'" + strings.ReplaceAll(q, `\`, `\\`) + "'"
}
