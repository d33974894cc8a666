package mixload

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/jackc/pgx/v5/pgconn"
)

// shortWorker opens short sessions one after another until the run's time
// is up, rotating through the clients.
func (p *Postgres) shortWorker(a *actor, w int) {
	p.r.shortWorker(a, w,
		shortKind{"short session (psql)", p.shortPsql},
		shortKind{"short session (pgx)", p.shortPgx},
		shortKind{"short session (pgconn, simple protocol)", p.shortPgconn})
}

// shortPgx: connect, check identity, insert a few rows with a prepared
// statement (autocommit), perhaps notify, count them, close.
func (p *Postgres) shortPgx(ctx context.Context, tag string) error {
	s, err := p.connect(ctx, tag)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.identity(ctx); err != nil {
		return err
	}
	n := 1 + s.rng.IntN(3)
	sql := fmt.Sprintf(pgInsert, p.rows)
	for seq := 1; seq <= n; seq++ {
		s.nextSeq(1)
		pl := payload(tag, seq, false)
		var gotTag, sum string
		var got int
		if err := s.conn.QueryRow(ctx, sql, tag, seq, string(pl)).Scan(&gotTag, &got, &sum); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if gotTag != tag || got != seq || sum != md5hex(pl) {
			return s.wrong("insert", "RETURNING (%q, %d, %s), want (%q, %d, %s)", gotTag, got, sum, tag, seq, md5hex(pl))
		}
		p.r.ledger.commit(tag, newBatch(tag, seq, seq, false))
	}
	if s.rng.IntN(2) == 0 {
		if err := s.notifyOne(ctx); err != nil {
			return err
		}
	}
	var count int64
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE session = $1", p.rows), tag).Scan(&count); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if count != int64(n) {
		return s.wrong("count", "%d rows, inserted %d", count, n)
	}
	return s.identity(ctx)
}

// shortPgconn is a short session over pgconn alone and the simple
// protocol: literals in the SQL, several statements per Query.
func (p *Postgres) shortPgconn(ctx context.Context, tag string) error {
	r := p.r
	r.st.connects.Add(1)
	c, err := pgconn.ConnectConfig(ctx, p.cfg.Config.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	res, err := c.Exec(ctx, fmt.Sprintf("SELECT %s::text, pg_backend_pid()", pgLit(tag))).ReadAll()
	if err != nil {
		c.Close(ctx)
		return fmt.Errorf("first query: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != tag {
		c.Close(ctx)
		r.wrongAnswer(tag, "first query", "%v", res)
		return errWrong
	}
	pid := string(res[0].Rows[0][1])
	var id int64
	fmt.Sscan(pid, &id)
	if err := r.live.open(id, tag); err != nil {
		c.Close(ctx)
		r.wrongAnswer(tag, "first query", "%v", err)
		return errWrong
	}
	r.st.opened.Add(1)
	defer func() {
		r.live.close(id, tag)
		c.Close(ctx)
		r.st.closed.Add(1)
	}()
	pl := payload(tag, 1, false)
	sql := fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES (%s, 1, %s); SELECT session, seq, md5(payload), pg_backend_pid() FROM %s WHERE session = %s",
		p.rows, pgLit(tag), pgLit(string(pl)), p.rows, pgLit(tag))
	res, err = c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return fmt.Errorf("insert and select: %w", err)
	}
	if len(res) != 2 || res[0].CommandTag.RowsAffected() != 1 {
		r.wrongAnswer(tag, "insert and select", "%d results", len(res))
		return errWrong
	}
	r.ledger.commit(tag, newBatch(tag, 1, 1, false))
	if len(res[1].Rows) != 1 {
		r.wrongAnswer(tag, "insert and select", "%d rows back, want 1", len(res[1].Rows))
		return errWrong
	}
	row := res[1].Rows[0]
	if string(row[0]) != tag || string(row[1]) != "1" || string(row[2]) != md5hex(pl) || string(row[3]) != pid {
		r.wrongAnswer(tag, "insert and select", "row (%s, %s, %s, %s), want (%s, 1, %s, %s)", row[0], row[1], row[2], row[3], tag, md5hex(pl), pid)
		return errWrong
	}
	r.st.multiStmt.Add(1)
	r.st.identity.Add(1)
	return nil
}

// shortPsql is a short session by psql (libpq): identity, an insert and a
// count, one statement per -c.
func (p *Postgres) shortPsql(ctx context.Context, tag string) error {
	r := p.r
	pl := payload(tag, 1, false)
	cmd := exec.CommandContext(ctx, r.opts.CLI, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", p.conn,
		"-c", fmt.Sprintf("SELECT %s, pg_backend_pid()", pgLit(tag)),
		"-c", fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES (%s, 1, %s)", p.rows, pgLit(tag), pgLit(string(pl))),
		"-c", fmt.Sprintf("SELECT count(*), md5(string_agg(payload, '')) FROM %s WHERE session = %s", p.rows, pgLit(tag)))
	cmd.Env = append(cmd.Environ(), "PGAPPNAME=mixload-psql", "PGCONNECT_TIMEOUT=20")
	return r.cliSession(cmd, "psql", tag, "|", false)
}
