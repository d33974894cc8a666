package mixload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

type myOp struct {
	name   string
	weight int
	run    func(s *mySession, ctx context.Context) error
}

var myLongOps = []myOp{
	{"insert and commit", 5, (*mySession).insertCommit},
	{"insert and roll back", 2, (*mySession).insertRollback},
	{"bulk insert and read back", 2, (*mySession).bulk},
	{"large value up", 1, (*mySession).largeUp},
	{"large value down", 1, (*mySession).largeDown},
	{"many rows", 1, (*mySession).manyRows},
	{"multi-statement query", 3, (*mySession).multiStatement},
	{"idle", 1, (*mySession).idle},
}

func pickMy(s *mySession) myOp {
	total := 0
	for _, op := range myLongOps {
		total += op.weight
	}
	n := s.rng.IntN(total)
	for _, op := range myLongOps {
		if n < op.weight {
			return op
		}
		n -= op.weight
	}
	return myLongOps[0]
}

// long is a session held for the whole run, busy all the time.
func (m *MySQL) long(a *actor, i int) {
	r := m.r
	tag := fmt.Sprintf("%s_l%d", r.id, i)
	ctx, cancel := r.opCtx()
	s, err := m.connect(ctx, tag)
	cancel()
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail(tag, "connect", err)
		}
		return
	}
	defer s.close()
	for n := 0; !r.stopping(); n++ {
		// Every kind of work once first (each session from another
		// start), then at random: a slow run still covers them all.
		op := pickMy(s)
		if n < len(myLongOps) {
			op = myLongOps[(n+i)%len(myLongOps)]
		}
		if b, ok := r.ledger.oldest(tag, int64(r.opts.KeepRows)); ok {
			op = myOp{name: "trim", run: func(s *mySession, ctx context.Context) error { return s.trim(ctx, b) }}
		}
		a.doing(op.name)
		ctx, cancel := r.opCtx()
		err := op.run(s, ctx)
		if err == nil {
			err = s.identity(ctx)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail(tag, op.name, err)
			}
			return
		}
	}
}

// insertCommit inserts a few rows with a prepared statement in a
// transaction, reads them back inside it, and commits.
func (s *mySession) insertCommit(ctx context.Context) error {
	n := 1 + s.rng.IntN(8)
	first := s.nextSeq(n)
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
	n := 1 + s.rng.IntN(8)
	first := s.nextSeq(n)
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

// largeUp stores a value of several MB (go-sql-driver sends it with
// COM_STMT_SEND_LONG_DATA), checks it on the server and back, deletes it.
func (s *mySession) largeUp(ctx context.Context) error {
	seq := s.nextSeq(1)
	v := largeValue(s.tag, seq, s.m.r.opts.LargeValue)
	res, err := s.conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (session, seq, v) VALUES (?, ?, ?)", s.m.blobs), s.tag, seq, v)
	if err != nil {
		return fmt.Errorf("insert a large value: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return s.wrong("insert a large value", "%d rows affected", n)
	}
	where := fmt.Sprintf(" FROM %s WHERE session = ? AND seq = ?", s.m.blobs)
	var sum string
	var length int
	if err := s.conn.QueryRowContext(ctx, "SELECT MD5(v), LENGTH(v)"+where, s.tag, seq).Scan(&sum, &length); err != nil {
		return fmt.Errorf("md5 of the large value: %w", err)
	}
	if sum != md5hex(v) || length != len(v) {
		return s.wrong("md5 of the large value", "server has (%s, %d), sent (%s, %d)", sum, length, md5hex(v), len(v))
	}
	var back []byte
	if err := s.conn.QueryRowContext(ctx, "SELECT v"+where, s.tag, seq).Scan(&back); err != nil {
		return fmt.Errorf("read the large value back: %w", err)
	}
	if !bytes.Equal(back, v) {
		return s.wrong("read the large value back", "%s", firstDiff(back, v))
	}
	if res, err = s.conn.ExecContext(ctx, "DELETE"+where, s.tag, seq); err != nil {
		return fmt.Errorf("delete the large value: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return s.wrong("delete the large value", "%d rows affected", n)
	}
	s.m.r.st.largeUp.Add(1)
	s.m.r.st.largeBytes.Add(2 * int64(len(v)))
	return nil
}

// largeDown has the server make a value of several MB that names the
// session.
func (s *mySession) largeDown(ctx context.Context) error {
	seq := s.nextSeq(1)
	unit := repeatUnit(s.tag, seq)
	count := s.m.r.opts.LargeValue / len(unit)
	var tag string
	var got []byte
	if err := s.conn.QueryRowContext(ctx, "SELECT ?, REPEAT(?, ?)", s.tag, unit, count).Scan(&tag, &got); err != nil {
		return fmt.Errorf("large value down: %w", err)
	}
	if want := strings.Repeat(unit, count); tag != s.tag || string(got) != want {
		return s.wrong("large value down", "tag %q, %s", tag, firstDiff(got, []byte(want)))
	}
	s.m.r.st.largeDown.Add(1)
	s.m.r.st.largeBytes.Add(int64(len(got)))
	return nil
}

// digits is a ten-row derived table; five of them make up to 100,000 rows.
const digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"

// manyRows reads a result of many rows, each naming the session.
func (s *mySession) manyRows(ctx context.Context) error {
	n := s.m.r.opts.ManyRows
	q := fmt.Sprintf("SELECT ?, n, MD5(CONCAT(?, ':', n)) FROM (SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 1 AS n FROM %[1]s a, %[1]s b, %[1]s c, %[1]s e, %[1]s f) g WHERE n <= ? ORDER BY n", digits)
	rows, err := s.conn.QueryContext(ctx, q, s.tag, s.tag, n)
	if err != nil {
		return fmt.Errorf("many rows: %w", err)
	}
	defer rows.Close()
	i := 0
	var tag, sum string
	var g int
	for rows.Next() {
		i++
		if err := rows.Scan(&tag, &g, &sum); err != nil {
			return fmt.Errorf("many rows: %w", err)
		}
		if tag != s.tag || g != i || sum != md5hex(fmt.Appendf(nil, "%s:%d", s.tag, i)) {
			return s.wrong("many rows", "row %d is (%q, %d, %s)", i, tag, g, sum)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("many rows: %w", err)
	}
	if i != n {
		return s.wrong("many rows", "%d rows, want %d", i, n)
	}
	s.m.r.st.manyResults.Add(1)
	s.m.r.st.manyRows.Add(int64(n))
	return nil
}

// idle leaves the session idle for a while, as an application's pooled
// connection is between requests.
func (s *mySession) idle(ctx context.Context) error {
	pause(s.m.r, time.Duration(200+s.rng.IntN(1500))*time.Millisecond)
	return nil
}

// trim deletes the session's oldest batch in a transaction; the server
// must delete exactly the rows the ledger holds for it.
func (s *mySession) trim(ctx context.Context, b batch) error {
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE session = ? AND seq BETWEEN ? AND ?", s.m.rows), s.tag, b.first, b.last)
	if err != nil {
		return fmt.Errorf("delete old rows: %w", err)
	}
	if n, _ := res.RowsAffected(); n != b.rows {
		return s.wrong("delete old rows", "deleted %d rows of seq %d..%d, the ledger has %d", n, b.first, b.last, b.rows)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit the delete: %w", err)
	}
	s.m.r.ledger.remove(s.tag, b)
	s.m.r.st.trims.Add(1)
	return nil
}
