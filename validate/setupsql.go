package validate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// SetupOptions say which IAM user to create and what it may do.
type SetupOptions struct {
	Engine   config.Engine // Postgres when unset
	User     string
	Database string // Postgres: granted CONNECT; MySQL: the default requirement's database
	Host     string // MySQL account host; default "%"
	// Require and RequireSequences are the grants; none means SELECT on
	// every table of public (Postgres) or of Database (MySQL).
	Require          []Requirement
	RequireSequences []Requirement
	// IAMPrincipal is the IAM role (or user) ARN an Aurora DSQL role is
	// mapped to (AWS IAM GRANT); a placeholder when unset.
	IAMPrincipal string
}

// SetupSQL is the SQL that creates the IAM user with its grants, one
// statement per line after a comment saying where to run it. It is the
// same SQL validate's fixes are made of, so a user created with it passes
// validate.
func SetupSQL(o SetupOptions) (string, error) {
	stmts, err := SetupStatements(o)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	switch o.Engine {
	case config.MySQL:
		b.WriteString("-- Run as the master user. The account accepts only IAM tokens, over TLS.\n")
	case config.DSQL:
		b.WriteString(dsqlHeader(o))
	default:
		db := o.Database
		if db == "" {
			db = "the application's database"
		}
		fmt.Fprintf(&b, "-- Run as the master user, connected to %s. ALTER DEFAULT PRIVILEGES covers\n", db)
		b.WriteString("-- the tables and sequences that the role running it creates later.\n")
	}
	for _, s := range stmts {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// SetupStatements is SetupSQL as statements, each ending in ";".
func SetupStatements(o SetupOptions) ([]string, error) {
	if o.User == "" {
		return nil, errors.New("no user to create")
	}
	switch o.Engine.OrDefault() {
	case config.Postgres:
		return postgresSetup(o)
	case config.MySQL:
		return mysqlSetup(o)
	case config.DSQL:
		return dsqlSetup(o)
	}
	return nil, fmt.Errorf("engine %q: supported engines: postgres, mysql, dsql", string(o.Engine))
}

func postgresSetup(o SetupOptions) ([]string, error) {
	tables, seqs, err := pgRequirements(o.Require, o.RequireSequences)
	if err != nil {
		return nil, err
	}
	u := sqlquote.PGRole(o.User)
	out := []string{
		"CREATE USER " + u + " WITH LOGIN;",
		"GRANT rds_iam TO " + u + ";",
	}
	if o.Database != "" {
		out = append(out, pgGrantConnect(o.Database, o.User))
	}
	for _, s := range schemasOf(tables, seqs) {
		out = append(out, pgGrantUsage(s, o.User))
	}
	for _, r := range tables {
		out = append(out, pgGrant(r, r.Privileges, "TABLE", o.User))
		if r.All() {
			out = append(out, pgDefaultPrivileges(r.Schema, r.Privileges, "TABLES", o.User))
		}
	}
	for _, r := range seqs {
		out = append(out, pgGrant(r, r.Privileges, "SEQUENCE", o.User))
		if r.All() {
			out = append(out, pgDefaultPrivileges(r.Schema, r.Privileges, "SEQUENCES", o.User))
		}
	}
	return out, nil
}

// pgRequirements expands ALL and applies the default (SELECT on public's
// tables) when no requirement is given at all.
func pgRequirements(tables, seqs []Requirement) ([]Requirement, []Requirement, error) {
	if len(tables) == 0 && len(seqs) == 0 {
		tables = DefaultRequirements("public")
	}
	var t, s []Requirement
	for _, r := range tables {
		e, err := expand(r, pgTablePrivileges, "tables")
		if err != nil {
			return nil, nil, err
		}
		t = append(t, e)
	}
	for _, r := range seqs {
		e, err := expand(r, pgSequencePrivileges, "sequences")
		if err != nil {
			return nil, nil, err
		}
		s = append(s, e)
	}
	return t, s, nil
}

// schemasOf lists the schemas the requirements name, once each, in order.
func schemasOf(lists ...[]Requirement) []string {
	var out []string
	for _, l := range lists {
		for _, r := range l {
			if !slices.Contains(out, r.Schema) {
				out = append(out, r.Schema)
			}
		}
	}
	return out
}

func pgGrantConnect(db, user string) string {
	return "GRANT CONNECT ON DATABASE " + sqlquote.PGIdent(db) + " TO " + sqlquote.PGRole(user) + ";"
}

func pgGrantUsage(schema, user string) string {
	return "GRANT USAGE ON SCHEMA " + sqlquote.PGIdent(schema) + " TO " + sqlquote.PGRole(user) + ";"
}

// pgGrant grants privs on r's objects: all of the schema's, or the one.
// kind is TABLE or SEQUENCE.
func pgGrant(r Requirement, privs []string, kind, user string) string {
	on := kind + " " + sqlquote.PGIdent(r.Schema) + "." + sqlquote.PGIdent(r.Object)
	if r.All() {
		on = "ALL " + kind + "S IN SCHEMA " + sqlquote.PGIdent(r.Schema)
	}
	return "GRANT " + strings.Join(privs, ", ") + " ON " + on + " TO " + sqlquote.PGRole(user) + ";"
}

// pgDefaultPrivileges makes future objects (kind TABLES or SEQUENCES) that
// the role running it creates in schema carry the grant.
func pgDefaultPrivileges(schema string, privs []string, kind, user string) string {
	return "ALTER DEFAULT PRIVILEGES IN SCHEMA " + sqlquote.PGIdent(schema) + " GRANT " + strings.Join(privs, ", ") +
		" ON " + kind + " TO " + sqlquote.PGRole(user) + ";"
}

func mysqlSetup(o SetupOptions) ([]string, error) {
	reqs, err := mysqlRequirements(o.Require, o.Database)
	if err != nil {
		return nil, err
	}
	if len(o.RequireSequences) > 0 {
		return nil, errors.New("MySQL has no sequences: drop --require-sequences")
	}
	acct := sqlquote.MySQLAccount(o.User, hostOr(o.Host))
	out := []string{"CREATE USER IF NOT EXISTS " + acct + " IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;"}
	for _, r := range reqs {
		out = append(out, mysqlGrant(r, r.Privileges, acct))
	}
	return out, nil
}

// mysqlRequirements expands ALL and applies the default (SELECT on db's
// tables), which needs a database.
func mysqlRequirements(reqs []Requirement, db string) ([]Requirement, error) {
	if len(reqs) == 0 {
		if db == "" {
			return nil, errors.New("MySQL: name the database (--database) or the grants (--require db.*:SELECT)")
		}
		reqs = DefaultRequirements(db)
	}
	var out []Requirement
	for _, r := range reqs {
		e, err := expand(r, mysqlPrivileges, "tables")
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func hostOr(h string) string {
	if h == "" {
		return "%"
	}
	return h
}

func mysqlGrant(r Requirement, privs []string, acct string) string {
	on := sqlquote.MySQLIdent(r.Schema) + ".*"
	if !r.All() {
		on = sqlquote.MySQLIdent(r.Schema) + "." + sqlquote.MySQLIdent(r.Object)
	}
	return "GRANT " + strings.Join(privs, ", ") + " ON " + on + " TO " + acct + ";"
}
