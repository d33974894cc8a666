package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// Resuming says a failed login attempt looks like a paused Aurora
// Serverless v2 cluster resuming: the connect refused or reset, the
// connection closed during TLS or the startup, or the server saying it is
// starting up (57P03, cannot_connect_now). Only these are retried under
// resume_wait (see proxy.Resume); an auth error, a timeout or a TLS
// verification failure is not a resume.
func Resuming(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code == pgwire.CodeCannotConnectNow
	}
	return proxy.ConnectionTurnedAway(err)
}

// Resuming implements proxy.Resumer with the function above.
func (p *Proxy) Resuming(err error) bool { return Resuming(err) }
