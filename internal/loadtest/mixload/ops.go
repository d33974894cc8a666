package mixload

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// The operations here check the same things on both engines; only the SQL
// differs, and each engine gives its own in statements.

// statements are what the shared operations send, in one engine's SQL,
// with the run's table names; the comments give the arguments in order.
type statements struct {
	insertBlob string // session, seq, v
	blobWhere  string // " FROM <blobs> WHERE <one value>", after SELECT ... or DELETE: session, seq
	repeat     string // tag, unit, count: the tag, and unit repeated count times
	manyRows   string // tag, tag, n: n rows (tag, i, md5 of "tag:i") in order of i
	trim       string // session, first, last: delete those rows
}

// rowScanner is a row of either driver (pgx.Row, *sql.Row).
type rowScanner interface{ Scan(dest ...any) error }

// resultRows are the rows of a result of either driver.
type resultRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// execer runs a statement and returns the rows it affected.
type execer interface {
	exec(ctx context.Context, sql string, args ...any) (int64, error)
}

// querier is a session that runs statements the same way over either
// driver, for the operations and checks whose logic does not depend on
// the engine.
type querier interface {
	session
	execer
	queryRow(ctx context.Context, sql string, args ...any) rowScanner
	query(ctx context.Context, sql string, args ...any) (resultRows, error)
	// inTx runs f in a transaction and commits it if f succeeds.
	inTx(ctx context.Context, f func(tx execer) error) error
	stmts() *statements
}

// largeUp stores a value of several MB (go-sql-driver sends it with
// COM_STMT_SEND_LONG_DATA), checks it on the server (md5, length) and
// back on the client, then deletes it.
func largeUp[S querier](s S, ctx context.Context) error {
	c, q := s.core(), s.stmts()
	seq := c.nextSeq(1)
	v := largeValue(c.tag, seq, c.r.opts.LargeValue)
	n, err := s.exec(ctx, q.insertBlob, c.tag, seq, v)
	if err != nil {
		return fmt.Errorf("insert a large value: %w", err)
	}
	if n != 1 {
		return c.wrong("insert a large value", "%d rows affected", n)
	}
	var sum string
	var length int
	if err := s.queryRow(ctx, "SELECT md5(v), length(v)"+q.blobWhere, c.tag, seq).Scan(&sum, &length); err != nil {
		return fmt.Errorf("md5 of the large value: %w", err)
	}
	if sum != md5hex(v) || length != len(v) {
		return c.wrong("md5 of the large value", "server has (%s, %d), sent (%s, %d)", sum, length, md5hex(v), len(v))
	}
	var back []byte
	if err := s.queryRow(ctx, "SELECT v"+q.blobWhere, c.tag, seq).Scan(&back); err != nil {
		return fmt.Errorf("read the large value back: %w", err)
	}
	if !bytes.Equal(back, v) {
		return c.wrong("read the large value back", "%s", firstDiff(back, v))
	}
	if n, err = s.exec(ctx, "DELETE"+q.blobWhere, c.tag, seq); err != nil {
		return fmt.Errorf("delete the large value: %w", err)
	}
	if n != 1 {
		return c.wrong("delete the large value", "%d rows affected", n)
	}
	c.r.st.largeUp.Add(1)
	c.r.st.largeBytes.Add(2 * int64(len(v)))
	return nil
}

// largeDown has the server make a value of several MB that names the
// session.
func largeDown[S querier](s S, ctx context.Context) error {
	c := s.core()
	seq := c.nextSeq(1)
	unit := repeatUnit(c.tag, seq)
	count := c.r.opts.LargeValue / len(unit)
	var tag string
	var got []byte
	if err := s.queryRow(ctx, s.stmts().repeat, c.tag, unit, count).Scan(&tag, &got); err != nil {
		return fmt.Errorf("large value down: %w", err)
	}
	if want := strings.Repeat(unit, count); tag != c.tag || string(got) != want {
		return c.wrong("large value down", "tag %q, %s", tag, firstDiff(got, []byte(want)))
	}
	c.r.st.largeDown.Add(1)
	c.r.st.largeBytes.Add(int64(len(got)))
	return nil
}

// manyRows reads a result of many rows, each naming the session.
func manyRows[S querier](s S, ctx context.Context) error {
	c := s.core()
	n := c.r.opts.ManyRows
	rows, err := s.query(ctx, s.stmts().manyRows, c.tag, c.tag, n)
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
		if tag != c.tag || g != i || sum != md5hex(fmt.Appendf(nil, "%s:%d", c.tag, i)) {
			return c.wrong("many rows", "row %d is (%q, %d, %s)", i, tag, g, sum)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("many rows: %w", err)
	}
	if i != n {
		return c.wrong("many rows", "%d rows, want %d", i, n)
	}
	c.r.st.manyResults.Add(1)
	c.r.st.manyRows.Add(int64(n))
	return nil
}

// idle leaves the session idle for a while, as an application's pooled
// connection is between requests.
func idle[S session](s S, ctx context.Context) error {
	pause(s.core().r, time.Duration(200+s.core().rng.IntN(1500))*time.Millisecond)
	return nil
}

// trimBatch deletes the session's oldest batch b in a transaction; the
// server must delete exactly the rows the ledger holds for it.
func trimBatch[S querier](s S, ctx context.Context, b batch) error {
	c := s.core()
	err := s.inTx(ctx, func(tx execer) error {
		n, err := tx.exec(ctx, s.stmts().trim, c.tag, b.first, b.last)
		if err != nil {
			return fmt.Errorf("delete old rows: %w", err)
		}
		if n != b.rows {
			return c.wrong("delete old rows", "deleted %d rows of seq %d..%d, the ledger has %d", n, b.first, b.last, b.rows)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.r.ledger.remove(c.tag, b)
	c.r.st.trims.Add(1)
	return nil
}

// firstDiff describes where got first differs from want.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	if i == n && len(got) == len(want) {
		return "equal"
	}
	from := max(0, i-20)
	return fmt.Sprintf("%d bytes, want %d; first difference at byte %d: got %q, want %q",
		len(got), len(want), i, clip(got[from:], 60), clip(want[from:], 60))
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
