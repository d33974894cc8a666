package postgres

import (
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// SQLSTATE codes the proxy answers with.
const (
	CodeConnectionFailure    = "08001" // sqlclient_unable_to_establish_sqlconnection
	CodeProtocolViolation    = "08P01"
	CodeInvalidAuthorization = "28000"
	CodeInvalidPassword      = "28P01"
	CodeTooManyConnections   = "53300"
	CodeFeatureNotSupported  = "0A000"
	CodeAdminShutdown        = "57P01"
)

// Error is a failure before the relay starts, as the client will see it.
// Message names the cause and the fix; it never holds a token or a secret.
type Error struct {
	Code    string // SQLSTATE
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

func protocolErrorf(format string, args ...any) *Error {
	return &Error{Code: CodeProtocolViolation, Reason: proxy.ReasonProtocol, Message: fmt.Sprintf(format, args...)}
}

// writeError sends e as a FATAL ErrorResponse.
func writeError(w io.Writer, e *Error) error {
	return writeErrorResponse(w, &pgproto3.ErrorResponse{
		Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: e.Code,
		Message: "rds-iam-proxy: " + e.Message, Detail: e.Detail, Hint: e.Hint,
	})
}

// WriteServerError sends an ErrorResponse as a server would, without the
// proxy's prefix (the emulator answers exactly like RDS).
func WriteServerError(w io.Writer, severity, code, message string) error {
	return writeErrorResponse(w, &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: message})
}

func writeErrorResponse(w io.Writer, msg *pgproto3.ErrorResponse) error {
	buf, err := msg.Encode(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
