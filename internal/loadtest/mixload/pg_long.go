package mixload

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgLongOps are the kinds of work a Postgres long session does.
var pgLongOps = []longOp[*pgSession]{
	{"insert and commit", 5, (*pgSession).insertCommit},
	{"insert and roll back", 2, (*pgSession).insertRollback},
	{"COPY in and out", 2, (*pgSession).copyInOut},
	{"large value up", 1, largeUp[*pgSession]},
	{"large value down", 1, largeDown[*pgSession]},
	{"many rows", 1, manyRows[*pgSession]},
	{"notify", 3, (*pgSession).notifyOne},
	{"multi-statement query", 2, (*pgSession).multiStatement},
	{"pipelined batch", 2, (*pgSession).pipeline},
	{"idle", 1, idle[*pgSession]},
}

// long is a session held for the whole run, busy all the time.
func (p *Postgres) long(a *actor, i int) { runLong(p.r, a, i, pgLongOps, p.connect) }

const pgInsert = "INSERT INTO %s (session, seq, payload) VALUES ($1, $2, $3) RETURNING session, seq, md5(payload)"

// insertCommit inserts a few rows in a transaction, perhaps with a
// notification, and commits.
func (s *pgSession) insertCommit(ctx context.Context) error {
	n, first := s.fewRows(8)
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	sql := fmt.Sprintf(pgInsert, s.p.rows)
	for seq := first; seq < first+n; seq++ {
		pl := payload(s.tag, seq, false)
		var tag, sum string
		var got int
		if err := tx.QueryRow(ctx, sql, s.tag, seq, string(pl)).Scan(&tag, &got, &sum); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if tag != s.tag || got != seq || sum != md5hex(pl) {
			return s.wrong("insert", "RETURNING (%q, %d, %s), want (%q, %d, %s)", tag, got, sum, s.tag, seq, md5hex(pl))
		}
	}
	var note string
	if s.rng.IntN(3) == 0 {
		note = s.p.notes.next(s.tag)
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", s.p.notify, note); err != nil {
			return fmt.Errorf("notify in a transaction: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.p.r.ledger.commit(s.tag, newBatch(s.tag, first, first+n-1, false))
	if note != "" {
		s.p.notes.sent(note, s.pid)
	}
	return nil
}

// insertRollback inserts rows and a notification in a transaction, sees
// them inside it, rolls back, and requires them gone.
func (s *pgSession) insertRollback(ctx context.Context) error {
	n, first := s.fewRows(8)
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	sql := fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES ($1, $2, $3)", s.p.rows)
	for seq := first; seq < first+n; seq++ {
		ct, err := tx.Exec(ctx, sql, s.tag, seq, string(payload(s.tag, seq, false)))
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if ct.RowsAffected() != 1 {
			return s.wrong("insert", "%q", ct)
		}
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", s.p.notify, rolledBackPrefix+s.tag); err != nil {
		return fmt.Errorf("notify in a transaction: %w", err)
	}
	count := fmt.Sprintf("SELECT count(*), $1::text FROM %s WHERE session = $1 AND seq BETWEEN $2 AND $3", s.p.rows)
	var seen int
	var tag string
	if err := tx.QueryRow(ctx, count, s.tag, first, first+n-1).Scan(&seen, &tag); err != nil {
		return fmt.Errorf("count in the transaction: %w", err)
	}
	if seen != n || tag != s.tag {
		return s.wrong("count in the transaction", "(%d, %q), want (%d, %q)", seen, tag, n, s.tag)
	}
	if err := tx.Rollback(ctx); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	s.p.r.st.rolledBack.Add(int64(n))
	if err := s.conn.QueryRow(ctx, count, s.tag, first, first+n-1).Scan(&seen, &tag); err != nil {
		return fmt.Errorf("count after the rollback: %w", err)
	}
	if seen != 0 {
		s.p.r.st.rolledBackSeen.Add(int64(seen))
		return s.wrong("count after the rollback", "%d rows still there", seen)
	}
	return nil
}

// copyInOut loads a batch with COPY FROM STDIN and reads it back with COPY
// TO STDOUT: the bytes must come back exactly as sent.
func (s *pgSession) copyInOut(ctx context.Context) error {
	n := s.p.r.opts.CopyRows
	first := s.nextSeq(n)
	buf := make([]byte, 0, n*180)
	for seq := first; seq < first+n; seq++ {
		buf = appendCopyLine(buf, s.tag, seq, payload(s.tag, seq, false))
	}
	pc := s.conn.PgConn()
	ct, err := pc.CopyFrom(ctx, bytes.NewReader(buf), fmt.Sprintf("COPY %s (session, seq, payload) FROM STDIN", s.p.rows))
	if err != nil {
		return fmt.Errorf("COPY FROM STDIN: %w", err)
	}
	if ct.RowsAffected() != int64(n) {
		return s.wrong("COPY FROM STDIN", "%q, want %d rows", ct, n)
	}
	s.p.r.ledger.commit(s.tag, newBatch(s.tag, first, first+n-1, false))
	var out bytes.Buffer
	out.Grow(len(buf))
	_, err = pc.CopyTo(ctx, &out, fmt.Sprintf("COPY (SELECT session, seq, payload FROM %s WHERE session = %s AND seq BETWEEN %d AND %d ORDER BY seq) TO STDOUT",
		s.p.rows, pgLit(s.tag), first, first+n-1))
	if err != nil {
		return fmt.Errorf("COPY TO STDOUT: %w", err)
	}
	if !bytes.Equal(out.Bytes(), buf) {
		return s.wrong("COPY TO STDOUT", "%s", firstDiff(out.Bytes(), buf))
	}
	st := &s.p.r.st
	st.bulkBatches.Add(1)
	st.bulkBytesUp.Add(int64(len(buf)))
	st.bulkBytesDown.Add(int64(out.Len()))
	return nil
}

// notifyOne sends a notification outside any transaction.
func (s *pgSession) notifyOne(ctx context.Context) error {
	note := s.p.notes.next(s.tag)
	if _, err := s.conn.Exec(ctx, "SELECT pg_notify($1, $2)", s.p.notify, note); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	s.p.notes.sent(note, s.pid)
	return nil
}

// multiStatement sends three statements in one simple Query: a SET whose
// ParameterStatus must reach this session, the session's identity, and
// its row count, which must match the ledger.
func (s *pgSession) multiStatement(ctx context.Context) error {
	appName := fmt.Sprintf("%s_%d", s.tag, s.nonce)
	sql := fmt.Sprintf("SET application_name TO %s; SELECT %s::text, pg_backend_pid(); SELECT count(*) FROM %s WHERE session = %s",
		pgLit(appName), pgLit(s.tag), s.p.rows, pgLit(s.tag))
	res, err := s.conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return fmt.Errorf("multi-statement query: %w", err)
	}
	if len(res) != 3 || len(res[1].Rows) != 1 || len(res[2].Rows) != 1 {
		return s.wrong("multi-statement query", "%d results", len(res))
	}
	want := s.p.r.ledger.live(s.tag)
	if tag, pid, count := string(res[1].Rows[0][0]), string(res[1].Rows[0][1]), string(res[2].Rows[0][0]); tag != s.tag || pid != fmt.Sprint(s.pid) || count != fmt.Sprint(want) {
		return s.wrong("multi-statement query", "(%q, %s, %s rows), want (%q, %d, %d rows)", tag, pid, count, s.tag, s.pid, want)
	}
	if got := s.conn.PgConn().ParameterStatus("application_name"); got != appName {
		return s.wrong("multi-statement query", "ParameterStatus application_name %q, set %q", got, appName)
	}
	s.p.r.st.multiStmt.Add(1)
	return nil
}

// pipeline sends InsertRows prepared INSERTs and a count as one pgx
// batch: every message goes out before any answer is read (one Sync, so
// one implicit transaction), and the answers must come back in order.
func (s *pgSession) pipeline(ctx context.Context) error {
	n := s.p.r.opts.InsertRows
	first := s.nextSeq(n)
	b := &pgx.Batch{}
	sql := fmt.Sprintf(pgInsert, s.p.rows)
	for seq := first; seq < first+n; seq++ {
		b.Queue(sql, s.tag, seq, string(payload(s.tag, seq, false)))
	}
	b.Queue(fmt.Sprintf("SELECT count(*), $1::text FROM %s WHERE session = $1 AND seq BETWEEN $2 AND $3", s.p.rows), s.tag, first, first+n-1)
	br := s.conn.SendBatch(ctx, b)
	defer br.Close()
	for seq := first; seq < first+n; seq++ {
		var tag, sum string
		var got int
		if err := br.QueryRow().Scan(&tag, &got, &sum); err != nil {
			return fmt.Errorf("batch insert: %w", err)
		}
		if pl := payload(s.tag, seq, false); tag != s.tag || got != seq || sum != md5hex(pl) {
			return s.wrong("batch insert", "RETURNING (%q, %d, %s), want (%q, %d, %s)", tag, got, sum, s.tag, seq, md5hex(pl))
		}
	}
	var count int
	var tag string
	if err := br.QueryRow().Scan(&count, &tag); err != nil {
		return fmt.Errorf("batch count: %w", err)
	}
	if count != n || tag != s.tag {
		return s.wrong("batch count", "(%d, %q), want (%d, %q)", count, tag, n, s.tag)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	s.p.r.ledger.commit(s.tag, newBatch(s.tag, first, first+n-1, false))
	s.p.r.st.pipelines.Add(1)
	return nil
}
