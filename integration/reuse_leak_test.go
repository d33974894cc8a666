package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// Session reuse (issue 15), Postgres. Each leak case has client A change
// its session and leave cleanly; with one session parked per key, client
// B must get A's very backend (pg_backend_pid) and none of A's state.
// Budget: about 15 s of CI time for the whole file.

// startReuseProxy starts a proxy with session reuse on and at most one
// session parked per key, so B gets A's session or none.
func startReuseProxy(t *testing.T) string {
	t.Helper()
	return startProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.PoolMaxIdlePerKey = 1
	})
}

// one runs sql (one statement) and returns its first column of its first
// row, or "".
func one(t *testing.T, ctx context.Context, c *pgconn.PgConn, sql string) string {
	t.Helper()
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	if len(res.Rows) == 0 {
		return ""
	}
	return string(res.Rows[0][0])
}

// execScript runs a script of statements.
func execScript(t *testing.T, ctx context.Context, c *pgconn.PgConn, sql string) {
	t.Helper()
	if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func connectPG(t *testing.T, ctx context.Context, conninfo string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(ctx, conninfo)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// admin is a superuser connection straight to the server.
func admin(t *testing.T, ctx context.Context) *pgconn.PgConn {
	t.Helper()
	return connectPG(t, ctx, w.pg.ConnString("postgres", appDB))
}

// waitParked waits until backend pid has been reset and waits idle in the
// pool (its last query DISCARD ALL), so that the next client's Get does
// not race the end of the last client's relay.
func waitParked(t *testing.T, ctx context.Context, adm *pgconn.PgConn, pid string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		return one(t, ctx, adm, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'idle' AND query = 'DISCARD ALL'", pid)) == "1"
	})
}

// waitGone waits until backend pid has ended.
func waitGone(t *testing.T, ctx context.Context, adm *pgconn.PgConn, pid string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		return one(t, ctx, adm, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid) == "0"
	})
}

func TestReuseLeaksNothing(t *testing.T) {
	w.enter(t)
	port := startReuseProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	for _, tc := range []struct {
		name, check, change string
	}{
		{"temp table", "SELECT to_regclass('leak_t') IS NULL", "CREATE TEMP TABLE leak_t (x int); INSERT INTO leak_t VALUES (1)"},
		{"SQL prepared statement", "SELECT count(*) FROM pg_prepared_statements", "PREPARE leak_p AS SELECT 1"},
		{"SET", "SELECT current_setting('statement_timeout') || current_setting('search_path')", "SET statement_timeout = '1234'; SET search_path = pg_catalog"},
		{"set_config", "SELECT current_setting('work_mem')", "SELECT set_config('work_mem', '1234kB', false)"},
		{"variable set in a transaction", "SELECT coalesce(current_setting('leak.user_id', true), '') || current_setting('TimeZone')",
			"BEGIN; SELECT set_config('leak.user_id', '42', false); SET TIME ZONE 'Asia/Tokyo'; COMMIT"},
		{"advisory locks", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", "SELECT pg_advisory_lock(4242); SELECT pg_advisory_lock_shared(4243)"},
		{"SET ROLE", "SELECT current_user || ' ' || session_user", "SET ROLE rds_iam"},
		{"LISTEN", "SELECT count(*) FROM pg_listening_channels()", "LISTEN leak_chan"},
		{"cursor", "SELECT count(*) FROM pg_cursors", "DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1"},
		{"protocol prepared statement", "SELECT count(*) FROM pg_prepared_statements", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := connectPG(t, ctx, dsn(port, iamUser))
			pid := one(t, ctx, a, "SELECT pg_backend_pid()")
			before := one(t, ctx, a, tc.check)
			tz := a.ParameterStatus("TimeZone")
			if tc.change != "" {
				execScript(t, ctx, a, tc.change)
			} else if _, err := a.Prepare(ctx, "leak_proto", "SELECT 1", nil); err != nil { // Parse with a name, Sync
				t.Fatal(err)
			}
			if got := one(t, ctx, a, tc.check); got == before {
				t.Fatalf("the change did not show in its own session (%s = %q both times): the case proves nothing", tc.check, got)
			}
			if tc.name == "LISTEN" {
				// A notification for A, sent while it is still there, that
				// must never reach B.
				execScript(t, ctx, adm, "NOTIFY leak_chan, 'for A only'")
			}
			if err := a.Close(ctx); err != nil { // Terminate: a clean leave
				t.Fatal(err)
			}
			waitParked(t, ctx, adm, pid)

			var notes []string
			var mu sync.Mutex
			cfg, err := pgconn.ParseConfig(dsn(port, iamUser))
			if err != nil {
				t.Fatal(err)
			}
			cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
				mu.Lock()
				notes = append(notes, n.Channel+" "+n.Payload)
				mu.Unlock()
			}
			b, err := pgconn.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			if got := one(t, ctx, b, "SELECT pg_backend_pid()"); got != pid {
				t.Fatalf("B got backend %s, not A's parked %s: the case proves nothing", got, pid)
			}
			if got := one(t, ctx, b, tc.check); got != before {
				t.Errorf("B sees %s = %q; a fresh session sees %q", tc.check, got, before)
			}
			if got := b.ParameterStatus("TimeZone"); got != tz {
				t.Errorf("B was told TimeZone %q; a fresh session is told %q", got, tz)
			}
			if tc.name == "LISTEN" {
				execScript(t, ctx, adm, "NOTIFY leak_chan, 'after A left'")
				execScript(t, ctx, b, "SELECT pg_sleep(0.2)")
				execScript(t, ctx, b, "SELECT 1")
				mu.Lock()
				if len(notes) != 0 {
					t.Errorf("B got A's notifications: %q", notes)
				}
				mu.Unlock()
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			waitParked(t, ctx, adm, pid)
		})
	}
}
