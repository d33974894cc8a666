package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// cmdToken prints one token, like `aws rds generate-db-auth-token`, for
// clients that cannot go through the proxy.
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "rds-iam-proxy token --endpoint HOST:PORT --db-user USER [--region REGION]\n\nPrints an IAM auth token (valid 15 minutes) to use as the password. It is a secret.", stderr)
	var up upstreamFlags
	up.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "rds-iam-proxy token:", err); return 1 }
	if up.dbUser == "" {
		return fail(fmt.Errorf("--db-user is required"))
	}
	host, portText, err := net.SplitHostPort(up.endpoint)
	if err != nil {
		return fail(fmt.Errorf("--endpoint %q: want HOST:PORT (the port is part of the signed token)", up.endpoint))
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fail(fmt.Errorf("--endpoint %q: invalid port", up.endpoint))
	}
	src, err := authtoken.New(ctx, authtoken.Options{Profile: up.profile})
	if err != nil {
		return fail(err)
	}
	region, _, err := authtoken.ResolveRegion(up.region, host, src.ChainRegion())
	if err != nil {
		return fail(err)
	}
	tok, err := src.Token(ctx, host, port, region, up.dbUser)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
