package mixload

import (
	"context"
	"fmt"
	"strings"
)

// myLongOps are the kinds of work a MySQL long session does.
var myLongOps = []longOp[*mySession]{
	{"insert and commit", 5, (*mySession).insertCommit},
	{"insert and roll back", 2, (*mySession).insertRollback},
	{"bulk insert and read back", 2, (*mySession).bulk},
	{"large value up", 1, largeUp[*mySession]},
	{"large value down", 1, largeDown[*mySession]},
	{"many rows", 1, manyRows[*mySession]},
	{"multi-statement query", 3, (*mySession).multiStatement},
	{"idle", 1, idle[*mySession]},
}

// long is a session held for the whole run, busy all the time.
func (m *MySQL) long(a *actor, i int) { runLong(m.r, a, i, myLongOps, m.connect) }

// insertCommit inserts a few rows with a prepared statement in a
// transaction, reads them back inside it, and commits.
func (s *mySession) insertCommit(ctx context.Context) error {
	n, first := s.fewRows(8)
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES (?, ?, ?)", s.m.rows))
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for seq := first; seq < first+n; seq++ {
		res, err := stmt.ExecContext(ctx, s.tag, seq, payload(s.tag, seq, true))
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if got, _ := res.RowsAffected(); got != 1 {
			return s.wrong("insert", "%d rows affected", got)
		}
	}
	if _, err := s.checkRows(ctx, tx, first, first+n-1); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.m.r.ledger.commit(s.tag, newBatch(s.tag, first, first+n-1, true))
	return nil
}

// insertRollback inserts rows in a transaction, sees them inside it, rolls
// back, and requires them gone.
func (s *mySession) insertRollback(ctx context.Context) error {
	n, first := s.fewRows(8)
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sql := fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES (?, ?, ?)", s.m.rows)
	for seq := first; seq < first+n; seq++ {
		if _, err := tx.ExecContext(ctx, sql, s.tag, seq, payload(s.tag, seq, true)); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	count := fmt.Sprintf("SELECT COUNT(*), ? FROM %s WHERE session = ? AND seq BETWEEN ? AND ?", s.m.rows)
	var seen int
	var tag string
	if err := tx.QueryRowContext(ctx, count, s.tag, s.tag, first, first+n-1).Scan(&seen, &tag); err != nil {
		return fmt.Errorf("count in the transaction: %w", err)
	}
	if seen != n || tag != s.tag {
		return s.wrong("count in the transaction", "(%d, %q), want (%d, %q)", seen, tag, n, s.tag)
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	s.m.r.st.rolledBack.Add(int64(n))
	if err := s.conn.QueryRowContext(ctx, count, s.tag, s.tag, first, first+n-1).Scan(&seen, &tag); err != nil {
		return fmt.Errorf("count after the rollback: %w", err)
	}
	if seen != 0 {
		s.m.r.st.rolledBackSeen.Add(int64(seen))
		return s.wrong("count after the rollback", "%d rows still there", seen)
	}
	return nil
}

// bulk loads CopyRows rows with multi-row prepared INSERTs (InsertRows
// rows, three parameters each, per statement) in one transaction, then
// reads them all back in one large SELECT.
func (s *mySession) bulk(ctx context.Context) error {
	o := s.m.r.opts
	n, per := o.CopyRows, min(o.InsertRows, o.CopyRows)
	first := s.nextSeq(n)
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	prepared := map[int]func(context.Context, ...any) (int64, error){}
	insert := func(rows int) (func(context.Context, ...any) (int64, error), error) {
		if f, ok := prepared[rows]; ok {
			return f, nil
		}
		stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES %s",
			s.m.rows, strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", rows), ", ")))
		if err != nil {
			return nil, fmt.Errorf("prepare a %d-row INSERT: %w", rows, err)
		}
		f := func(ctx context.Context, args ...any) (int64, error) {
			res, err := stmt.ExecContext(ctx, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}
		prepared[rows] = f
		return f, nil
	}
	var up int64
	for at := first; at < first+n; at += per {
		rows := min(per, first+n-at)
		f, err := insert(rows)
		if err != nil {
			return err
		}
		args := make([]any, 0, 3*rows)
		for seq := at; seq < at+rows; seq++ {
			pl := payload(s.tag, seq, true)
			up += int64(len(pl))
			args = append(args, s.tag, seq, pl)
		}
		got, err := f(ctx, args...)
		if err != nil {
			return fmt.Errorf("multi-row insert: %w", err)
		}
		if got != int64(rows) {
			return s.wrong("multi-row insert", "%d rows affected, want %d", got, rows)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.m.r.ledger.commit(s.tag, newBatch(s.tag, first, first+n-1, true))
	down, err := s.checkRows(ctx, s.conn, first, first+n-1)
	if err != nil {
		return err
	}
	st := &s.m.r.st
	st.bulkBatches.Add(1)
	st.bulkBytesUp.Add(up)
	st.bulkBytesDown.Add(down)
	return nil
}

// multiStatement sends one COM_QUERY of several statements: two INSERTs
// with hex literals, the session's identity and its row count, which must
// match the ledger.
func (s *mySession) multiStatement(ctx context.Context) error {
	first := s.nextSeq(3)
	values := func(from, to int) string {
		var parts []string
		for seq := from; seq <= to; seq++ {
			parts = append(parts, fmt.Sprintf("(%s, %d, %s)", myLit(s.tag), seq, myHex(payload(s.tag, seq, true))))
		}
		return strings.Join(parts, ", ")
	}
	sql := fmt.Sprintf("INSERT INTO %[1]s (session, seq, payload) VALUES %[2]s; INSERT INTO %[1]s (session, seq, payload) VALUES %[3]s; SELECT %[4]s, CONNECTION_ID(); SELECT COUNT(*) FROM %[1]s WHERE session = %[4]s",
		s.m.rows, values(first, first), values(first+1, first+2), myLit(s.tag))
	rows, err := s.conn.QueryContext(ctx, sql)
	if err != nil {
		return fmt.Errorf("multi-statement query: %w", err)
	}
	defer rows.Close()
	s.m.r.ledger.commit(s.tag, newBatch(s.tag, first, first+2, true))
	var tag string
	var id, count int64
	if !rows.Next() {
		return fmt.Errorf("multi-statement query: no identity row: %v", rows.Err())
	}
	if err := rows.Scan(&tag, &id); err != nil {
		return fmt.Errorf("multi-statement query: %w", err)
	}
	if !rows.NextResultSet() || !rows.Next() {
		return fmt.Errorf("multi-statement query: no count row: %v", rows.Err())
	}
	if err := rows.Scan(&count); err != nil {
		return fmt.Errorf("multi-statement query: %w", err)
	}
	if rows.Next() || rows.NextResultSet() {
		return s.wrong("multi-statement query", "more results than sent statements")
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("multi-statement query: %w", err)
	}
	if want := s.m.r.ledger.live(s.tag); tag != s.tag || id != s.id || count != want {
		return s.wrong("multi-statement query", "(%q, %d, %d rows), want (%q, %d, %d rows)", tag, id, count, s.tag, s.id, want)
	}
	s.m.r.st.multiStmt.Add(1)
	return nil
}

// digits is a ten-row derived table; five of them make up to 100,000 rows.
const digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
