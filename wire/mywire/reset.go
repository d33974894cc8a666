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

// ResetConnection sends COM_RESET_CONNECTION on a session no client is
// using and reads its answer, exactly one packet (bounded by ResultLimit,
// under ctx's deadline). The server rolls back, drops temporary tables,
// releases GET_LOCK locks, clears user variables and prepared statements
// and re-inits session variables, keeping the connection id. An ERR, or
// an OK that still says a transaction is open, is an error after which
// the session must be closed.
func ResetConnection(ctx context.Context, c net.Conn) error {
	return command(ctx, c, []byte{ComResetConnection}, "COM_RESET_CONNECTION")
}

// InitDB makes db the session's default database (COM_INIT_DB), as
// ResetConnection leaves the one of the last USE.
func InitDB(ctx context.Context, c net.Conn, db string) error {
	return command(ctx, c, append([]byte{ComInitDB}, db...), "COM_INIT_DB")
}

// command sends a one-packet command and reads its OK.
func command(ctx context.Context, c net.Conn, payload []byte, name string) (err error) {
	defer exchange(ctx, c)(&err)
	if err := WritePacket(c, 0, payload); err != nil {
		return fmt.Errorf("send %s: %w", name, err)
	}
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
