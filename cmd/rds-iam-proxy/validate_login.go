package main

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// pgLoginFailed is loginFailed for a Postgres-protocol login through the
// proxy, keeping the refusal's HINT as the check's fix: the proxy puts
// its fix there (the policy to allow, the AWS IAM GRANT to run), and
// pgx's error text leaves it out.
func pgLoginFailed(err error, hint string) *validate.Report {
	r := loginFailed("IAM login", err, hint)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Hint != "" {
		r.Checks[0].Fix = pe.Hint
	}
	return r
}
