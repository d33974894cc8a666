package mixload

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSession is one pgx connection of the run, tagged and tied to the
// backend process it first saw.
type pgSession struct {
	sessionCore
	p    *Postgres
	conn *pgx.Conn
	pid  uint32 // pg_backend_pid(), the upstream's real process
}

// connect opens a session (pgx: prepared statements over the extended
// protocol) and registers its backend pid.
func (p *Postgres) connect(ctx context.Context, tag string) (*pgSession, error) {
	p.r.st.connects.Add(1)
	c, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &pgSession{sessionCore: newSessionCore(p.r, tag), p: p, conn: c}
	var got string
	if err := c.QueryRow(ctx, "SELECT $1::text, pg_backend_pid()", tag).Scan(&got, &s.pid); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("first query: %w", err)
	}
	if err := p.r.admit(tag, got, int64(s.pid)); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return s, nil
}

// close ends the session (Terminate, then close).
func (s *pgSession) close() {
	s.r.release(s.tag, int64(s.pid), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.conn.Close(ctx)
	})
}

// identity asks for the session's tag, a fresh counter and the backend
// pid, and requires all three to be this session's.
func (s *pgSession) identity(ctx context.Context) error {
	s.nonce++
	var tag string
	var nonce int64
	var pid uint32
	if err := s.conn.QueryRow(ctx, "SELECT $1::text, $2::bigint, pg_backend_pid()", s.tag, s.nonce).Scan(&tag, &nonce, &pid); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return s.checkIdentity(tag, nonce, int64(pid), int64(s.pid), "backend pid")
}

func (s *pgSession) queryRow(ctx context.Context, sql string, args ...any) rowScanner {
	return s.conn.QueryRow(ctx, sql, args...)
}

func (s *pgSession) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	ct, err := s.conn.Exec(ctx, sql, args...)
	return ct.RowsAffected(), err
}

func (s *pgSession) query(ctx context.Context, sql string, args ...any) (resultRows, error) {
	return s.conn.Query(ctx, sql, args...)
}

func (s *pgSession) inTx(ctx context.Context, f func(tx execer) error) error {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := f(pgTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *pgSession) stmts() *statements { return &s.p.sql }

// pgTx is a pgx transaction as an execer.
type pgTx struct{ tx pgx.Tx }

func (t pgTx) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	ct, err := t.tx.Exec(ctx, sql, args...)
	return ct.RowsAffected(), err
}
