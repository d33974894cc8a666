package mixload

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mySession is one go-sql-driver connection of the run, pinned (a sql.Conn
// of its own pool), tagged and tied to the connection id it first saw.
type mySession struct {
	sessionCore
	m    *MySQL
	db   *sql.DB
	conn *sql.Conn
	id   int64 // CONNECTION_ID(): the upstream's, which the proxy mirrors
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
	s := &mySession{sessionCore: newSessionCore(m.r, tag), m: m, db: db, conn: conn}
	var got string
	if err := conn.QueryRowContext(ctx, "SELECT ?, CONNECTION_ID()", tag).Scan(&got, &s.id); err != nil {
		s.shut()
		return nil, fmt.Errorf("first query: %w", err)
	}
	if err := m.r.admit(tag, got, s.id); err != nil {
		s.shut()
		return nil, err
	}
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

func (s *mySession) close() { s.r.release(s.tag, s.id, s.shut) }

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
	return s.checkIdentity(tag, nonce, id, s.id, "CONNECTION_ID()")
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

func (s *mySession) queryRow(ctx context.Context, sql string, args ...any) rowScanner {
	return s.conn.QueryRowContext(ctx, sql, args...)
}

func (s *mySession) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	res, err := s.conn.ExecContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *mySession) query(ctx context.Context, sql string, args ...any) (resultRows, error) {
	rows, err := s.conn.QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (s *mySession) inTx(ctx context.Context, f func(tx execer) error) error {
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(sqlTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *mySession) stmts() *statements { return &s.m.sql }

// sqlRows are database/sql's rows as resultRows; Close drops its error,
// as the deferred Close it stands for always did.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// sqlTx is a database/sql transaction as an execer.
type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
