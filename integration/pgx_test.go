package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func connectPgx(t *testing.T, port, user string, extra string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn(port, user)+" "+extra)
	if err != nil {
		t.Fatalf("pgx connect through the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPgxExtendedProtocol(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	ctx := context.Background()
	conn := connectPgx(t, port, iamUser, "application_name=pgx-it search_path=public options='-c statement_timeout=4321'")

	var user, appName, searchPath, timeout string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_setting('application_name'), current_setting('search_path'), current_setting('statement_timeout')").Scan(&user, &appName, &searchPath, &timeout); err != nil {
		t.Fatal(err)
	}
	if user != iamUser || appName != "pgx-it" || searchPath != "public" || timeout != "4321ms" {
		t.Fatalf("user=%q application_name=%q search_path=%q statement_timeout=%q; want app_user, pgx-it, public, 4321ms (startup parameters and options passed through)", user, appName, searchPath, timeout)
	}

	// application_name is what the server sees for this backend.
	var seen string
	if err := conn.QueryRow(ctx, "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if seen != "pgx-it" {
		t.Fatalf("pg_stat_activity.application_name = %q, want pgx-it", seen)
	}

	// Prepared statements, reused.
	if _, err := conn.Prepare(ctx, "by_name", "SELECT id FROM items WHERE name = $1"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two", "three"} {
		var id int
		if err := conn.QueryRow(ctx, "by_name", name).Scan(&id); err != nil {
			t.Fatalf("prepared %s: %v", name, err)
		}
		if id < 1 {
			t.Fatalf("id for %s = %d", name, id)
		}
	}

	// A transaction that commits (its row is deleted at the end, whatever
	// happens).
	t.Cleanup(func() { w.pg.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name = 'pgx-tx'") })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items (name) VALUES ($1)", "pgx-tx"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items WHERE name = 'pgx-tx'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("committed row count = %d, %v", n, err)
	}

	// A server error keeps its SQLSTATE and the session survives.
	_, err = conn.Exec(ctx, "INSERT INTO no_such_table VALUES (1)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("error = %v, want SQLSTATE 42P01", err)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("session unusable after an error: %v", err)
	}
}

func TestListenNotify(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listener := connectPgx(t, port, iamUser, "")
	notifier := connectPgx(t, port, iamUser, "")
	if _, err := listener.Exec(ctx, "LISTEN it_channel"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('it_channel', 'hello through the proxy')"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if n.Channel != "it_channel" || n.Payload != "hello through the proxy" {
		t.Fatalf("notification %q/%q", n.Channel, n.Payload)
	}
}

// TestCopy50MB sends 50 MB in with COPY FROM STDIN and reads it back with
// COPY TO STDOUT, comparing checksums.
func TestCopy50MB(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn := connectPgx(t, port, iamUser, "")
	pc := conn.PgConn()
	if err := pc.Exec(ctx, "CREATE TEMP TABLE big (line text)").Close(); err != nil {
		t.Fatal(err)
	}
	const total = 50 << 20
	in := &copySource{remaining: total, h: sha256.New()}
	tag, err := pc.CopyFrom(ctx, in, "COPY big FROM STDIN")
	if err != nil {
		t.Fatalf("COPY FROM: %v", err)
	}
	if tag.RowsAffected() != int64(in.lines) {
		t.Fatalf("COPY FROM stored %d rows, sent %d", tag.RowsAffected(), in.lines)
	}
	out := sha256.New()
	counter := &countingWriter{w: out}
	if _, err := pc.CopyTo(ctx, counter, "COPY big TO STDOUT"); err != nil {
		t.Fatalf("COPY TO: %v", err)
	}
	if counter.n != in.sent {
		t.Fatalf("COPY TO returned %d bytes, sent %d", counter.n, in.sent)
	}
	if !bytes.Equal(out.Sum(nil), in.h.Sum(nil)) {
		t.Fatal("COPY TO returned different bytes than COPY FROM sent")
	}
	if in.sent < total {
		t.Fatalf("sent only %d bytes", in.sent)
	}
}

// copySource produces lines of text until remaining bytes are sent.
type copySource struct {
	remaining, sent int64
	lines           int
	h               hash.Hash
	pending         []byte
}

func (s *copySource) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.pending) == 0 {
			if s.remaining <= 0 {
				break
			}
			s.pending = fmt.Appendf(s.pending[:0], "%08d %s\n", s.lines, strings.Repeat("abcdefghij", 10))
			s.lines++
			s.remaining -= int64(len(s.pending))
		}
		c := copy(p[n:], s.pending)
		s.h.Write(s.pending[:c])
		s.pending = s.pending[c:]
		n += c
	}
	s.sent += int64(n)
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}
