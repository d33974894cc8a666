package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// cmdToken prints one token, like `aws rds generate-db-auth-token`, for
// clients that cannot go through the proxy. The token is signed as run
// signs it: the same resolution of the endpoint, region and credentials.
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "rds-iam-proxy token --endpoint HOST:PORT --db-user USER [--region REGION]\n\nPrints an IAM auth token (valid 15 minutes) to use as the password. It is a secret.", stderr)
	flags := config.RegisterUpstream(fs, config.SigningKeys...)
	cfg, code, ok := parseUpstreamFlags("token", fs, flags, args, stderr)
	if !ok {
		return code
	}
	fail := commandFailure("token", 1, stderr)
	if cfg.DBUser == "" {
		return fail(fmt.Errorf("--db-user is required"))
	}
	up, err := launch.Parse(cfg)
	if err != nil {
		return fail(err)
	}
	if err := up.OpenSigner(ctx, nil); err != nil {
		return fail(err)
	}
	defer up.Close()
	tok, err := up.Token(ctx, cfg.DBUser)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
