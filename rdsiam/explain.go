package rdsiam

import (
	"context"
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Explain turns the error of a failed connection (pool.Ping, db.PingContext,
// pgx.ConnectConfig) into the *failure.Failure the proxy tells its client
// for the same fault: what went wrong and how to fix it ("upstream
// rejected the IAM token for user ... Fix: check that ... may
// rds-db:connect on arn:aws:rds-db:..."), built by the proxy's own
// explainers. The driver's error stays inside (errors.Is and As reach
// it). nil stays nil; an error that is not a failed login comes back
// unchanged, as does one the signer already explained.
//
// A hook cannot see how the login it prepared ends, so the program asks:
// call Explain where the connection error surfaces.
func (s *Signer) Explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := failure.As(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err // the caller gave up: nothing to explain
	}
	return s.up.Explain(ctx, s.user, fromDriver(err), s.log)
}

// fromDriver puts go-sql-driver/mysql's own forms of a login failure in
// the wire codec's, which the MySQL explainers read; it keeps the
// driver's error inside. pgx's errors (*pgconn.PgError, net and TLS
// errors) are what the Postgres explainers read already.
func fromDriver(err error) error {
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me):
		state := strings.TrimRight(string(me.SQLState[:]), "\x00")
		return &driverError{err: err, as: &mywire.ServerError{Code: me.Number, State: state, Message: me.Message}}
	case errors.Is(err, mysql.ErrNoTLS):
		return &driverError{err: err, as: mywire.ErrNoTLS}
	}
	return err
}

// driverError is a driver's error read as the codec's: As and Is find
// both, its text is the driver's.
type driverError struct {
	err error
	as  error
}

func (e *driverError) Error() string   { return e.err.Error() }
func (e *driverError) Unwrap() []error { return []error{e.err, e.as} }
