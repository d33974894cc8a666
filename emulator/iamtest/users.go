package iamtest

import (
	"fmt"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// PostgresUserSQL creates user as an RDS IAM user of PostgreSQL: a member
// of rds_iam (made when missing, NOLOGIN, as on RDS) whose password is the
// one the emulator's front logs in with (empty: none, for a server that
// trusts the front). It is the one way an IAM user is created here: the
// demo's and tests' servers (internal/throwaway/iamstack) use it too.
func PostgresUserSQL(user, password string) []string {
	create := "CREATE ROLE " + sqlquote.PGRole(user) + " LOGIN"
	if password != "" {
		create += " PASSWORD " + pgString(password)
	}
	return []string{
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN CREATE ROLE rds_iam NOLOGIN; END IF; END $$`,
		create + " IN ROLE rds_iam",
	}
}

// PostgresDropSQL drops what user owns in the current database, the user,
// and rds_iam when it has no members left and dropRDSIAM (it was made for
// the user).
func PostgresDropSQL(user string, dropRDSIAM bool) []string {
	stmts := []string{"DROP OWNED BY " + sqlquote.PGRole(user), "DROP ROLE " + sqlquote.PGRole(user)}
	if dropRDSIAM {
		stmts = append(stmts, `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = 'rds_iam') THEN DROP ROLE IF EXISTS rds_iam; END IF; END $$`)
	}
	return stmts
}

// MySQLUserSQL creates user (from any host) as an RDS IAM user of MySQL
// stands for one here: it logs in with the password the emulator's front
// uses, and over TLS only when requireTLS (an RDS IAM login is always
// over TLS; a server without TLS cannot require it). The front is told
// the user is an IAM user (emulator.MySQLOptions.IAMUsers).
func MySQLUserSQL(user, password string, requireTLS bool) string {
	s := fmt.Sprintf("CREATE USER %s IDENTIFIED BY %s", sqlquote.MySQLAccount(user, "%"), sqlquote.MySQLString(password))
	if requireTLS {
		s += " REQUIRE SSL"
	}
	return s
}

// MySQLDropSQL drops user.
func MySQLDropSQL(user string) string {
	return "DROP USER IF EXISTS " + sqlquote.MySQLAccount(user, "%")
}

// pgString is a PostgreSQL string literal.
func pgString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
