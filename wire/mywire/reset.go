package mywire

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Commands the proxy sends on a session it owns between clients (session
// reuse).
const (
	ComInitDB          = 0x02
	ComResetConnection = 0x1f
)

// ServerStatusInTrans is the status flag an OK or EOF carries while a
// transaction is open.
const ServerStatusInTrans = 0x0001

// ResetSession resets a session no client is using: COM_RESET_CONNECTION,
// then COM_INIT_DB to db (the reset keeps the database of the last USE).
// The server rolls back, drops temporary tables, releases GET_LOCK locks,
// clears user variables and prepared statements and re-inits session
// variables, keeping the connection id. Both commands go in one write and
// their answers, exactly one packet each (bounded by ResultLimit, under
// ctx's deadline), are read in turn: one round trip, not two. The server
// takes commands in order, each once it has answered the last, so the
// reset is done before the database is set. An ERR, or an OK that still
// says a transaction is open, is an error after which the session must be
// closed.
func ResetSession(ctx context.Context, c net.Conn, db string) (err error) {
	defer exchange(ctx, c)(&err)
	if len(db)+1 >= MaxPayload {
		return fmt.Errorf("COM_INIT_DB: a database name of %d bytes is too long", len(db))
	}
	b := make([]byte, 0, 4+1+4+1+len(db))
	b = append(b, 1, 0, 0, 0, ComResetConnection)
	n := 1 + len(db)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), 0, ComInitDB)
	b = append(b, db...)
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("send COM_RESET_CONNECTION and COM_INIT_DB: %w", err)
	}
	if err := readOK(c, "COM_RESET_CONNECTION"); err != nil {
		return err
	}
	return readOK(c, "COM_INIT_DB")
}

// command sends a one-packet command and reads its OK.
func command(ctx context.Context, c net.Conn, payload []byte, name string) (err error) {
	defer exchange(ctx, c)(&err)
	if err := WritePacket(c, 0, payload); err != nil {
		return fmt.Errorf("send %s: %w", name, err)
	}
	return readOK(c, name)
}

// readOK reads the one-packet answer to the command name: an OK with no
// transaction open, or an error.
func readOK(c net.Conn, name string) error {
	seq, p, err := ReadPacket(c, ResultLimit)
	if err != nil {
		return fmt.Errorf("read the answer to %s: %w", name, err)
	}
	switch {
	case seq != 1:
		return fmt.Errorf("answer to %s: sequence id %d, want 1 (out of step)", name, seq)
	case len(p) > 0 && p[0] == 0xff:
		return fmt.Errorf("%s: %w", name, ParseErr(p))
	case !IsOK(p):
		return fmt.Errorf("answer to %s: not an OK (first byte 0x%02x, %d bytes)", name, firstByte(p), len(p))
	}
	r := &reader{b: p[1:]}
	r.lenenc() // affected rows
	r.lenenc() // last insert id
	status := r.uint16()
	if r.err != nil {
		return fmt.Errorf("answer to %s: malformed OK: %w", name, r.err)
	}
	if status&ServerStatusInTrans != 0 {
		return fmt.Errorf("after %s: %w", name, ErrInTransaction)
	}
	return nil
}

// ErrInTransaction is a session still in a transaction after a reset.
var ErrInTransaction = errors.New("the session is still in a transaction")

func firstByte(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}
