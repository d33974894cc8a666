package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/prompt"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

const doctorSynopsis = `rds-iam-proxy doctor --endpoint HOST:PORT --db-user USER [flags]

Runs every step of an IAM login in order and stops at the first broken one,
with its cause and the fix: AWS credentials, sts:GetCallerIdentity, the
clock, the endpoint name, port and region, DNS, TCP, TLS with the RDS CA
bundle, IAM database authentication on the instance or cluster
(DescribeDBInstances/DescribeDBClusters), the rds-db:connect policy
(SimulatePrincipalPolicy), and a login with a token. AWS questions this
identity may not ask are reported as "could not check (...)", not as
failures. Exit status 0 when nothing failed, 1 otherwise.`

// cmdDoctor runs validate.Doctor with run's flags for one upstream.
func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", doctorSynopsis, stderr)
	flags := config.RegisterUpstream(fs, config.LoginKeys...)
	var reqs reqFlags
	reqs.register(fs)
	dbName := fs.String("db-name", "", "database to log in to (default: postgres for PostgreSQL, none for MySQL)")
	resourceID := fs.String("resource-id", "", resourceIDUsage)
	format := fs.String("format", "text", formatUsage)
	stepTimeout := fs.Duration("step-timeout", 30*time.Second, "limit for each step")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "rds-iam-proxy doctor: --format %q: use text or json\n", *format)
		return 2
	}
	cfg, err := upstreamConfig(flags)
	if err != nil {
		return flagProblems("doctor", err, stderr)
	}
	if cfg.DBUser == "" {
		fmt.Fprintln(stderr, "rds-iam-proxy doctor: pass --db-user, the database user to check")
		return 2
	}
	if prompt.Available() {
		// A profile with mfa_serial, or --mfa-serial without --mfa-code,
		// asks for its code here, as run does.
		cfg.MFAPrompt = prompt.MFACode
	}
	tables, seqs, err := reqs.load(cfg.Engine)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy doctor:", err)
		return 2
	}
	rep := validate.Doctor(ctx, validate.DoctorOptions{
		Config: cfg, DBUser: cfg.DBUser, Database: *dbName, ResourceID: *resourceID, StepTimeout: *stepTimeout,
		// The last step: validate's database checks, as the user through
		// the proxy (the token login before it has worked).
		ValidateDB: func(ctx context.Context) *validate.Report {
			o := validate.DBOptions{User: cfg.DBUser, Database: *dbName, Host: "%", Require: tables, RequireSequences: seqs}
			return validateThroughProxy(ctx, cfg, o, stderr)
		},
	})
	if *format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy doctor:", err)
		return 1
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
