package mysql

import (
	"io"
)

// Error is a failure before the relay, as the client will see it: an ERR
// packet whose message starts "rds-iam-proxy: " and names the cause and
// the fix. It never holds a token or a secret.
type Error struct {
	Code    uint16
	Message string
	Reason  string // log label (proxy.Reason*)
	Err     error  // underlying cause, for the log only
	// Seq is the sequence id the ERR goes out with. Greeted says the
	// client has the greeting, so it knows the 4.1 protocol and reads a
	// SQLSTATE; before it, servers send none.
	Seq     byte
	Greeted bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// writeError sends e as an ERR packet.
func writeError(w io.Writer, e *Error) error {
	return writePacket(w, e.Seq, marshalErr(e.Code, sqlState(e.Code), "rds-iam-proxy: "+e.Message, e.Greeted))
}
