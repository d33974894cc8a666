package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// cmdToken prints one token, like `aws rds generate-db-auth-token`, for
// clients that cannot go through the proxy.
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "rds-iam-proxy token --endpoint HOST:PORT --db-user USER [--region REGION]\n\nPrints an IAM auth token (valid 15 minutes) to use as the password. It is a secret.", stderr)
	engine := fs.String("engine", "postgres", "database engine (sets the default port): postgres or mysql")
	endpoint := fs.String("endpoint", "", "RDS endpoint HOST[:PORT]; the port is part of the signed token")
	dbUser := fs.String("db-user", "", "the database user to sign for (required)")
	region := fs.String("region", "", "the DB's AWS region (default: from an RDS endpoint name, else AWS_REGION or the profile)")
	profile := fs.String("profile", "", "AWS shared-config profile (default: AWS_PROFILE or default)")
	var creds credFlags
	creds.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "rds-iam-proxy token:", err); return 1 }
	if *dbUser == "" {
		return fail(fmt.Errorf("--db-user is required"))
	}
	host, port, err := launch.SplitEndpoint(*endpoint, *engine)
	if err != nil {
		return fail(err)
	}
	cfg := launch.Config{Engine: *engine, Region: *region, Profile: *profile}
	creds.apply(&cfg)
	src, err := authtoken.New(ctx, cfg.TokenOptions(host, nil))
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	signRegion, _, err := authtoken.ResolveRegion(*region, host, src.ChainRegion())
	if err != nil {
		return fail(err)
	}
	tok, err := src.Token(ctx, host, port, signRegion, *dbUser)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
