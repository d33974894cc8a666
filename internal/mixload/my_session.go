package mixload

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mySession is one go-sql-driver connection of the run, pinned (a sql.Conn
// of its own pool), tagged and tied to the connection id it first saw.
type mySession struct {
	m     *MySQL
	tag   string
	db    *sql.DB
	conn  *sql.Conn
	id    int64 // CONNECTION_ID(): the upstream's, which the proxy mirrors
	nonce int64
	seq   int
	rng   *rand.Rand
}

// connect opens a session and registers its connection id.
func (m *MySQL) connect(ctx context.Context, tag string) (*mySession, error) {
	m.r.st.connects.Add(1)
	connector, err := mysql.NewConnector(m.cfg)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &mySession{m: m, tag: tag, db: db, conn: conn, rng: rand.New(rand.NewPCG(m.r.opts.Seed, uint64(len(tag))<<32|uint64(hashTag(tag))))}
	var got string
	if err := conn.QueryRowContext(ctx, "SELECT ?, CONNECTION_ID()", tag).Scan(&got, &s.id); err != nil {
		s.shut()
		return nil, fmt.Errorf("first query: %w", err)
	}
	if got != tag {
		s.shut()
		m.r.wrongAnswer(tag, "first query", "tag %q", got)
		return nil, errWrong
	}
	if err := m.r.live.open(s.id, tag); err != nil {
		s.shut()
		m.r.wrongAnswer(tag, "first query", "%v", err)
		return nil, errWrong
	}
	m.r.st.opened.Add(1)
	return s, nil
}

// shut closes the connection and its pool (COM_QUIT, then close).
func (s *mySession) shut() error {
	err := s.conn.Close()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *mySession) close() {
	s.m.r.live.close(s.id, s.tag)
	if err := s.shut(); err != nil {
		s.m.r.fail(s.tag, "close", err)
	}
	s.m.r.st.closed.Add(1)
}

func (s *mySession) wrong(op, format string, args ...any) error {
	s.m.r.wrongAnswer(s.tag, op, format, args...)
	return errWrong
}

// identity asks for the tag, a fresh counter and CONNECTION_ID(), over the
// binary protocol (a prepared statement) and the text protocol in turn.
func (s *mySession) identity(ctx context.Context) error {
	s.nonce++
	var tag string
	var nonce, id int64
	var err error
	if s.nonce%2 == 0 {
		err = s.conn.QueryRowContext(ctx, "SELECT ?, ?, CONNECTION_ID()", s.tag, s.nonce).Scan(&tag, &nonce, &id)
	} else {
		err = s.conn.QueryRowContext(ctx, fmt.Sprintf("SELECT %s, %d, CONNECTION_ID()", myLit(s.tag), s.nonce)).Scan(&tag, &nonce, &id)
	}
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if tag != s.tag || nonce != s.nonce {
		return s.wrong("identity", "got (%q, %d), want (%q, %d)", tag, nonce, s.tag, s.nonce)
	}
	if id != s.id {
		return s.wrong("identity", "CONNECTION_ID() %d, the session began on %d", id, s.id)
	}
	s.m.r.st.identity.Add(1)
	return nil
}

func (s *mySession) nextSeq(n int) int {
	first := s.seq + 1
	s.seq += n
	return first
}

// myLit is a MySQL string literal for the names and tags the run makes
// (letters, digits, underscores).
func myLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// myHex is a hex literal: any bytes, no escaping to get wrong.
func myHex(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" }

// checkRows reads (seq, payload) rows of tag first..last in seq order and
// requires each to be the row the run wrote.
func (s *mySession) checkRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, first, last int) (int64, error) {
	rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT session, seq, payload FROM %s WHERE session = ? AND seq BETWEEN ? AND ? ORDER BY seq", s.m.rows), s.tag, first, last)
	if err != nil {
		return 0, fmt.Errorf("read rows back: %w", err)
	}
	defer rows.Close()
	var bytesDown int64
	want := first
	var tag string
	var seq int
	var pl []byte
	for rows.Next() {
		if err := rows.Scan(&tag, &seq, &pl); err != nil {
			return 0, fmt.Errorf("read rows back: %w", err)
		}
		exp := payload(s.tag, want, true)
		if tag != s.tag || seq != want || string(pl) != string(exp) {
			return 0, s.wrong("read rows back", "row %d is (%q, %d, %s)", want, tag, seq, firstDiff(pl, exp))
		}
		bytesDown += int64(len(pl))
		want++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read rows back: %w", err)
	}
	if want != last+1 {
		return 0, s.wrong("read rows back", "%d rows, want %d", want-first, last-first+1)
	}
	return bytesDown, nil
}
