package proxy

import (
	"context"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// TokenSource builds IAM tokens and says whose credentials sign them.
// *authtoken.Source implements it; every engine's front uses it.
type TokenSource interface {
	Token(ctx context.Context, host string, port int, region, user string) (string, error)
	Identity(ctx context.Context, region string) (authtoken.Identity, error)
}
