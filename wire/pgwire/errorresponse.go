package pgwire

import (
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// WriteError sends e as an ErrorResponse; an empty SeverityUnlocalized
// takes Severity's value, as servers send both.
func WriteError(w io.Writer, e *pgproto3.ErrorResponse) error {
	if e.SeverityUnlocalized == "" {
		m := *e
		m.SeverityUnlocalized = m.Severity
		e = &m
	}
	buf, err := e.Encode(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// WriteServerError sends an ErrorResponse with only a severity, a code
// and a message, as a server refusing a login does.
func WriteServerError(w io.Writer, severity, code, message string) error {
	return WriteError(w, &pgproto3.ErrorResponse{Severity: severity, Code: code, Message: message})
}
