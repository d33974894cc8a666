package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// TokenRejected says whether err is the server's generic rejection of a
// token ("PAM authentication failed"), which RDS may also give a login it
// throttled; it implements proxy.TokenRejecter.
func (p *Proxy) TokenRejected(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && Classify(pgErr) == TokenRejected
}
