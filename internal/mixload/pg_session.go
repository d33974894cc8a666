package mixload

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSession is one pgx connection of the run, tagged and tied to the
// backend process it first saw.
type pgSession struct {
	p     *Postgres
	tag   string
	conn  *pgx.Conn
	pid   uint32 // pg_backend_pid(), the upstream's real process
	nonce int64
	seq   int // last row seq used
	rng   *rand.Rand
}

// connect opens a session (pgx: prepared statements over the extended
// protocol) and registers its backend pid.
func (p *Postgres) connect(ctx context.Context, tag string) (*pgSession, error) {
	p.r.st.connects.Add(1)
	c, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &pgSession{p: p, tag: tag, conn: c, rng: rand.New(rand.NewPCG(p.r.opts.Seed, uint64(len(tag))<<32|uint64(hashTag(tag))))}
	var got string
	if err := c.QueryRow(ctx, "SELECT $1::text, pg_backend_pid()", tag).Scan(&got, &s.pid); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("first query: %w", err)
	}
	if got != tag {
		c.Close(ctx)
		p.r.wrongAnswer(tag, "first query", "tag %q", got)
		return nil, errWrong
	}
	if err := p.r.live.open(int64(s.pid), tag); err != nil {
		c.Close(ctx)
		p.r.wrongAnswer(tag, "first query", "%v", err)
		return nil, errWrong
	}
	p.r.st.opened.Add(1)
	return s, nil
}

// close ends the session (Terminate, then close).
func (s *pgSession) close() {
	s.p.r.live.close(int64(s.pid), s.tag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.conn.Close(ctx); err != nil {
		s.p.r.fail(s.tag, "close", err)
	}
	s.p.r.st.closed.Add(1)
}

// wrong records a wrong answer and ends the session.
func (s *pgSession) wrong(op, format string, args ...any) error {
	s.p.r.wrongAnswer(s.tag, op, format, args...)
	return errWrong
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
	if tag != s.tag || nonce != s.nonce {
		return s.wrong("identity", "got (%q, %d), want (%q, %d)", tag, nonce, s.tag, s.nonce)
	}
	if pid != s.pid {
		return s.wrong("identity", "backend pid %d, the session began on %d", pid, s.pid)
	}
	s.p.r.st.identity.Add(1)
	return nil
}

// nextSeq reserves n row numbers and returns the first.
func (s *pgSession) nextSeq(n int) int {
	first := s.seq + 1
	s.seq += n
	return first
}

func md5hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

func hashTag(tag string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(tag); i++ {
		h = (h ^ uint32(tag[i])) * 16777619
	}
	return h
}
