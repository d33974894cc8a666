package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

const setupSynopsis = `rds-iam-proxy setup sql --engine ENGINE --db-user USER [--database DB] [--require ...] [flags]
rds-iam-proxy setup policy ...

setup sql prints the SQL that creates an IAM database user with the
requested grants (run it as the master user); validate then checks it.`

// cmdSetup is "setup <what>": each thing it can set up has its own case.
func cmdSetup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, setupSynopsis)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	what, args := args[0], args[1:]
	switch what {
	case "sql":
		return cmdSetupSQL(ctx, args, stdout, stderr)
	case "policy":
		return cmdSetupPolicy(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "rds-iam-proxy setup: unknown %q: use sql or policy\n\n%s\n", what, setupSynopsis)
	return 2
}

const setupSQLSynopsis = `rds-iam-proxy setup sql --engine ENGINE --db-user USER [--database DB] [--require SCHEMA.*:PRIV,...] [flags]

Prints the SQL that creates USER as an IAM database user with the grants
(default: SELECT on every table of public, or of --database for MySQL).
Postgres: CREATE USER ... WITH LOGIN, GRANT rds_iam, CONNECT, USAGE, the
grants and ALTER DEFAULT PRIVILEGES. MySQL: CREATE USER ... IDENTIFIED WITH
AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL, and the grants. Aurora DSQL
(--engine dsql): CREATE ROLE ... WITH LOGIN, AWS IAM GRANT to
--iam-principal, USAGE and the grants (run as admin).`

func cmdSetupSQL(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("setup sql", setupSQLSynopsis, stderr)
	flags := config.RegisterUpstream(fs, "engine", "db_user")
	database := fs.String("database", "", databaseUsage)
	host := fs.String("host", "%", accountHostUsage)
	principal := fs.String("iam-principal", "", iamPrincipalUsage)
	var reqs reqFlags
	reqs.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	u, err := flags.Upstream()
	if err != nil {
		return flagProblems("setup sql", err, stderr)
	}
	fail := commandFailure("setup sql", 2, stderr)
	if u.DBUser == "" {
		return fail(fmt.Errorf("--db-user is required"))
	}
	tables, seqs, err := reqs.load(u.Engine)
	if err != nil {
		return fail(err)
	}
	out, err := validate.SetupSQL(validate.SetupOptions{Engine: u.Engine, User: u.DBUser, Database: *database, Host: *host, Require: tables, RequireSequences: seqs, IAMPrincipal: *principal})
	if err != nil {
		return fail(err)
	}
	fmt.Fprint(stdout, out)
	return 0
}
