package pgwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// MaxResetMessage bounds each message read in answer to a reset, a SET or
// a ping: the answers are a few short messages (CommandComplete,
// ParameterStatus, ReadyForQuery; perhaps a notice or a stale
// notification, whose payload PostgreSQL caps at 8000 bytes). A server
// that announces more is not answered in step, and the session is closed.
const MaxResetMessage = 64 << 10

// ResetQuery is what makes a session that a client left idle fit for the
// next client: it closes cursors, resets every parameter to its value at
// connection start and the role and session authorization, drops
// prepared statements (SQL and protocol level), temporary tables, plans
// and sequences' state, unlistens every channel and releases session
// advisory locks. It cannot run in a transaction block.
const ResetQuery = "DISCARD ALL"

// Reset runs query (ResetQuery) on a session that is idle (its last
// ReadyForQuery said 'I') and returns the ParameterStatus values the
// server reported while doing it, to apply to what the session's next
// client is told. See Exec for how the answer is read.
func Reset(ctx context.Context, c net.Conn, query string) (changed map[string]string, err error) {
	return Exec(ctx, c, query)
}

// SetParams sets each parameter in params for the session, in one simple
// query (SET name = 'value'; ...), and returns the ParameterStatus values
// the server reported. Names and values are quoted, so a client's
// application_name cannot run SQL of its own.
func SetParams(ctx context.Context, c net.Conn, params map[string]string) (changed map[string]string, err error) {
	if len(params) == 0 {
		return map[string]string{}, nil
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	var q strings.Builder
	for _, name := range names {
		fmt.Fprintf(&q, "SET %s = %s;", sqlquote.PGIdent(name), sqlquote.PGString(params[name]))
	}
	return Exec(ctx, c, q.String())
}

// Ping sends an empty query: the server answers EmptyQueryResponse and
// ReadyForQuery if the session is alive and idle.
func Ping(ctx context.Context, c net.Conn) error {
	_, err := Exec(ctx, c, "")
	return err
}

// Exec sends sql as a simple Query on a session the proxy owns (no client
// on it) and reads the answer up to its ReadyForQuery with exact framed
// reads, so not one byte past it is taken from the connection: what comes
// next belongs to the session's next client. Reads are bounded by ctx
// (its deadline, and its end cuts them) and each message by
// MaxResetMessage. ParameterStatus values are collected; notices and
// notifications are dropped (they were for the last client); an
// ErrorResponse, a row, or a ReadyForQuery other than 'I' (idle) is an
// error, after which the session must be closed. The connection's
// deadlines are cleared on return.
func Exec(ctx context.Context, c net.Conn, sql string) (changed map[string]string, err error) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil {
			err = ctx.Err() // the cut may have landed: the deadline is poisoned
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		c.SetDeadline(time.Time{})
	}()
	msg, err := (&pgproto3.Query{String: sql}).Encode(nil)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("send %q: %w", clip(sql), err)
	}
	changed = map[string]string{}
	var serverErr error
	var hdr [5]byte
	body := make([]byte, 0, 256)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, fmt.Errorf("read the answer to %q: %w", clip(sql), err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[1:]))
		if size < 4 || size-4 > MaxResetMessage {
			return nil, fmt.Errorf("answer to %q: message %q of %d bytes (at most %d expected)", clip(sql), hdr[0], size, MaxResetMessage)
		}
		body = body[:size-4]
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, fmt.Errorf("read the answer to %q: %w", clip(sql), err)
		}
		switch hdr[0] {
		case 'S': // ParameterStatus
			name, value, ok := parseParameterStatus(body)
			if !ok {
				return nil, fmt.Errorf("answer to %q: malformed ParameterStatus", clip(sql))
			}
			changed[name] = value
		case 'N', 'A', 'C', 'I': // notice, notification, CommandComplete, EmptyQueryResponse
		case 'E':
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err != nil {
				return nil, fmt.Errorf("answer to %q: malformed ErrorResponse: %w", clip(sql), err)
			}
			if serverErr == nil {
				serverErr = fmt.Errorf("%q failed: %s: %s (SQLSTATE %s)", clip(sql), e.Severity, e.Message, e.Code)
			}
		case 'Z':
			if len(body) != 1 {
				return nil, fmt.Errorf("answer to %q: malformed ReadyForQuery", clip(sql))
			}
			if serverErr != nil {
				return nil, serverErr
			}
			if body[0] != 'I' {
				return nil, fmt.Errorf("after %q the session is not idle (ReadyForQuery %q)", clip(sql), body[0])
			}
			return changed, nil
		default:
			return nil, fmt.Errorf("answer to %q: unexpected message %q", clip(sql), hdr[0])
		}
	}
}

// parseParameterStatus splits a ParameterStatus body: name NUL value NUL.
func parseParameterStatus(b []byte) (name, value string, ok bool) {
	n, rest, found := bytes.Cut(b, []byte{0})
	if !found {
		return "", "", false
	}
	v, tail, found := bytes.Cut(rest, []byte{0})
	if !found || len(tail) != 0 {
		return "", "", false
	}
	return string(n), string(v), true
}

// clip keeps a query short in an error: a SET carries a client's values.
func clip(sql string) string {
	if i := strings.IndexAny(sql, " ;"); i > 0 && len(sql) > 40 {
		return sql[:i] + " ..."
	}
	return sql
}
