package mywire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ComQuery is COM_QUERY: one SQL text, answered by an OK, an ERR or a
// result set.
const ComQuery = 0x03

// Query limits: the proxy's own queries (Aurora's topology) return a few
// short rows; anything much larger is not the server it expects.
const (
	QueryMaxColumns = 64
	QueryMaxRows    = 10_000
	QueryMaxBytes   = 1 << 20 // the whole answer
)

// ServerStatusMoreResults is the status flag of an OK or EOF that another
// result follows.
const ServerStatusMoreResults = 0x0008

// QueryRow is one text-protocol row: each column's value, nil for NULL.
type QueryRow = [][]byte

// Query sends one COM_QUERY on a logged-in session no client is using and
// reads its answer to the end: an OK (no rows), an ERR (a *ServerError,
// wrapped), or one text result set. deprecateEOF says whether the login
// negotiated CLIENT_DEPRECATE_EOF (Session.Caps), which changes how the
// column definitions and the rows end. ctx's deadline bounds the whole
// exchange, and the answer is bounded by the Query limits. A query that
// returns more than one result is an error (the session is then out of
// step and must be closed).
func Query(ctx context.Context, c net.Conn, deprecateEOF bool, query string) (rows []QueryRow, err error) {
	defer exchange(ctx, c)(&err)
	if len(query) >= MaxPayload-1 {
		return nil, errors.New("query too long")
	}
	if err := WritePacket(c, 0, append([]byte{ComQuery}, query...)); err != nil {
		return nil, fmt.Errorf("send the query: %w", err)
	}
	q := &queryReader{c: c, seq: 1, left: QueryMaxBytes}
	p, err := q.next()
	if err != nil {
		return nil, err
	}
	switch {
	case len(p) > 0 && p[0] == 0xff:
		return nil, ParseErr(p)
	case len(p) > 0 && p[0] == 0x00:
		return nil, q.end(p, false)
	case len(p) > 0 && p[0] == 0xfb:
		return nil, errors.New("the server asks for a local file (LOAD DATA LOCAL): refused")
	}
	r := &reader{b: p}
	ncol := r.lenenc()
	if r.err != nil || len(r.b) != 0 || ncol == 0 {
		return nil, fmt.Errorf("a result set header of %d bytes that is not a column count", len(p))
	}
	if ncol > QueryMaxColumns {
		return nil, fmt.Errorf("a result of %d columns, over the limit of %d", ncol, QueryMaxColumns)
	}
	for range ncol {
		if _, err := q.next(); err != nil { // column definitions: only their count matters here
			return nil, err
		}
	}
	if !deprecateEOF {
		p, err := q.next()
		if err != nil {
			return nil, err
		}
		if !isEOF(p) {
			return nil, errors.New("no EOF after the column definitions")
		}
	}
	for {
		p, err := q.next()
		if err != nil {
			return nil, err
		}
		switch {
		case len(p) > 0 && p[0] == 0xff:
			return nil, ParseErr(p)
		case !deprecateEOF && isEOF(p):
			return rows, q.end(p, true)
		case deprecateEOF && len(p) > 0 && p[0] == 0xfe:
			// With CLIENT_DEPRECATE_EOF an OK with the 0xfe header ends the
			// rows; a row starting with 0xfe would need a value over 16 MiB.
			return rows, q.end(p, false)
		}
		if len(rows) == QueryMaxRows {
			return nil, fmt.Errorf("over %d rows", QueryMaxRows)
		}
		row, err := parseTextRow(p, int(ncol))
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
}

// isEOF says whether p is an EOF packet (0xfe, shorter than any row that
// could start with that byte).
func isEOF(p []byte) bool { return len(p) > 0 && len(p) < 9 && p[0] == 0xfe }

// parseTextRow reads n length-encoded values (0xfb: NULL).
func parseTextRow(p []byte, n int) (QueryRow, error) {
	r := &reader{b: p}
	row := make(QueryRow, n)
	for i := range row {
		if len(r.b) > 0 && r.b[0] == 0xfb {
			r.b = r.b[1:]
			continue
		}
		v := r.lenencBytes()
		if r.err != nil {
			return nil, fmt.Errorf("row column %d: %w", i+1, r.err)
		}
		row[i] = append([]byte{}, v...)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("a row with %d bytes after its %d columns", len(r.b), n)
	}
	return row, nil
}

// queryReader reads an answer's packets, checking their sequence ids and
// the answer's total size.
type queryReader struct {
	c    net.Conn
	seq  byte
	left int
}

func (q *queryReader) next() ([]byte, error) {
	seq, p, err := ReadPacket(q.c, min(q.left, ResultLimit))
	if err != nil {
		var tl *PacketTooLargeError
		if errors.As(err, &tl) {
			return nil, fmt.Errorf("an answer over %d bytes: %w", QueryMaxBytes, err)
		}
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if seq != q.seq {
		return nil, fmt.Errorf("answer packet with sequence id %d, want %d (out of step)", seq, q.seq)
	}
	q.seq++
	q.left -= len(p) + 4
	return p, nil
}

// end checks the OK (or, eof, the EOF) that ends an answer: another
// result after it is an error.
func (q *queryReader) end(p []byte, eof bool) error {
	r := &reader{b: p[1:]}
	var status uint16
	if eof {
		r.uint16() // warnings
		status = r.uint16()
	} else {
		r.lenenc() // affected rows
		r.lenenc() // last insert id
		status = r.uint16()
	}
	if r.err != nil {
		return fmt.Errorf("malformed end of the answer: %w", r.err)
	}
	if status&ServerStatusMoreResults != 0 {
		return errors.New("the query returned more than one result")
	}
	return nil
}

// ComQuit is COM_QUIT: the server closes the session without an answer.
const ComQuit = 0x01

// Quit says goodbye on a session and closes it, waiting at most a second
// for the write: a server that sees COM_QUIT does not count the close as
// an aborted connection.
func Quit(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	WritePacket(c, 0, []byte{ComQuit})
	c.Close()
}
