package postgres

import (
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// Error is a failure before the relay starts, as the client will see it.
// Message names the cause and the fix; it never holds a token or a secret.
type Error struct {
	Code    string // SQLSTATE (pgwire.Code*)
	Message string // sent after "rds-iam-proxy: "
	Detail  string // optional
	Hint    string // optional
	Reason  string // log label
	Err     error  // underlying cause, for the log only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

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
	msg := pe.Message
	var version *pgwire.VersionError
	switch {
	case errors.Is(err, pgwire.ErrDirectTLS):
		msg = "the client started TLS directly (sslnegotiation=direct); rds-iam-proxy accepts plaintext on its local listener: connect with sslmode=disable or prefer"
	case errors.As(err, &version):
		msg = fmt.Sprintf("unsupported frontend protocol %d.%d: rds-iam-proxy speaks protocol 3", version.Major, version.Minor)
	}
	return &Error{Code: pe.Code, Reason: proxy.ReasonProtocol, Message: msg}
}

// writeError sends e as a FATAL ErrorResponse.
func writeError(w io.Writer, e *Error) error {
	return pgwire.WriteError(w, &pgproto3.ErrorResponse{
		Severity: "FATAL", Code: e.Code,
		Message: "rds-iam-proxy: " + e.Message, Detail: e.Detail, Hint: e.Hint,
	})
}
