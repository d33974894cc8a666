package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/dsql"
)

// dsqlSigner is the principal Aurora DSQL maps the proxy's signer by (an
// assumed role's sessions by the role's ARN), asked of STS, so validate
// can look for it in sys.iam_pg_role_mappings. "" when there is no
// identity to ask about: the check then says so rather than guess.
func dsqlSigner(ctx context.Context, cfg launch.Config, stderr io.Writer) string {
	up, err := launch.ParseIdentity(cfg)
	if err == nil {
		err = up.OpenSigner(ctx, nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy validate: the signing principal is unknown:", err)
		return ""
	}
	defer up.Close()
	id, err := up.Tokens.Identity(ctx, up.Region)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy validate: the signing principal is unknown:", err)
		return ""
	}
	return dsql.MappedPrincipal(id.ARN)
}
