package postgres

import (
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// clientError turns what went wrong reading a client's opening into what
// the client is told: a protocol violation gets the code a server would
// answer with, in the proxy's words where the proxy has more to say than
// the protocol. Anything else (a client gone, a timeout) is returned as
// is: nobody is listening for an answer.
func clientError(err error) error {
	var pe *pgwire.ProtocolError
	if !errors.As(err, &pe) {
		return err
	}
	f := &failure.Failure{Reason: failure.Protocol, Code: failure.Code{SQLState: pe.Code}, Cause: pe.Message}
	var version *pgwire.VersionError
	switch {
	case errors.Is(err, pgwire.ErrDirectTLS):
		f.Cause = "the client started TLS directly (sslnegotiation=direct); rds-iam-proxy accepts plaintext on its local listener"
		f.Fix = "connect with sslmode=disable or prefer"
	case errors.As(err, &version):
		f.Cause = fmt.Sprintf("unsupported frontend protocol %d.%d: rds-iam-proxy speaks protocol 3", version.Major, version.Minor)
	}
	return f
}

// sqlState is the SQLSTATE f goes out with: the server's own when it
// carries one, else the one a server would use for its reason.
func sqlState(f *failure.Failure) string {
	if f.Code.SQLState != "" {
		return f.Code.SQLState
	}
	switch f.Reason {
	case failure.Limit, failure.HandshakeLimit, failure.Evicted:
		return pgwire.CodeTooManyConnections
	case failure.Credentials:
		return pgwire.CodeInvalidAuthorization
	case failure.UpstreamAuth:
		return pgwire.CodeInvalidPassword
	case failure.Shutdown:
		return pgwire.CodeAdminShutdown
	case failure.Protocol:
		return pgwire.CodeProtocolViolation
	}
	return pgwire.CodeConnectionFailure
}

// writeFailure sends f as a FATAL ErrorResponse: the cause as the message
// (after "rds-iam-proxy: ") and the fix as the HINT, which psql prints on
// its own line ("HINT:  ...") and drivers keep apart (pgconn's
// PgError.Hint).
func writeFailure(w io.Writer, f *failure.Failure) error {
	return pgwire.WriteError(w, &pgproto3.ErrorResponse{
		Severity: "FATAL", Code: sqlState(f),
		Message: "rds-iam-proxy: " + f.Cause, Hint: f.Fix,
	})
}
