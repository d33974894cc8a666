package pgwire

import (
	"errors"
	"fmt"
)

// ProtocolError is a peer that broke the handshake's rules. Code is the
// SQLSTATE a PostgreSQL server answers such a client with (08P01 for a
// malformed packet, 0A000 for an unsupported version, 28000 for a missing
// user); Message says what was wrong, in the protocol's terms.
type ProtocolError struct {
	Code    string
	Message string
	// Err, when set, is a more specific cause a caller may test for
	// (ErrDirectTLS, a *VersionError).
	Err error
}

func (e *ProtocolError) Error() string { return e.Message }

func (e *ProtocolError) Unwrap() error { return e.Err }

func protocolErrorf(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: CodeProtocolViolation, Message: fmt.Sprintf(format, args...)}
}

// ErrDirectTLS is a client that opened with a TLS ClientHello instead of
// a startup packet (libpq 17's sslnegotiation=direct).
var ErrDirectTLS = errors.New("the client started TLS directly (sslnegotiation=direct)")

// VersionError is a StartupMessage for a protocol other than 3.x.
type VersionError struct{ Major, Minor uint16 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("unsupported frontend protocol %d.%d: only protocol 3 is spoken", e.Major, e.Minor)
}
