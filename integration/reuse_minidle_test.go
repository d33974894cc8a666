package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// TestReusePoolMinIdle: with pool_min_idle 3, once the first client of a
// key has left, the proxy logs in sessions in the background until 3 are
// parked; a second wave of 3 clients at once gets those 3, two of which
// no client ever left, with nothing of the first client's state; while
// the wave holds them the pool logs in 3 more; when the wave leaves, the
// parked sessions stop at pool_max_idle_per_key.
func TestReusePoolMinIdle(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	port := startProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.PoolMinIdle = 3
		c.PoolMaxIdlePerKey = 4
		c.Observer = m.Upstream("minidle", "postgres")
	})
	reuseTaken := func() int {
		return int(gathered(t, m.Gatherer(), "rds_iam_proxy_session_reuse_total", "event", "taken"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	const app = "reuse_minidle"
	conninfo := dsn(port, iamUser) + " application_name=" + app
	backends := func() []string {
		res := adm.ExecParams(ctx, fmt.Sprintf("SELECT pid FROM pg_stat_activity WHERE usename = '%s' AND application_name = '%s' ORDER BY pid", iamUser, app),
			nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		var pids []string
		for _, r := range res.Rows {
			pids = append(pids, string(r[0]))
		}
		return pids
	}
	waitBackends := func(n int) []string {
		t.Helper()
		var pids []string
		waitFor(t, 30*time.Second, func() bool { pids = backends(); return len(pids) == n })
		return pids
	}

	// Wave 1: one client, which leaves state behind it.
	a := connectPG(t, ctx, conninfo)
	apid := one(t, ctx, a, "SELECT pg_backend_pid()")
	execScript(t, ctx, a, "CREATE TEMP TABLE minidle_t (x int); SET statement_timeout = '4321'; PREPARE minidle_p AS SELECT 1; SELECT pg_advisory_lock(4244)")
	if len(backends()) != 1 {
		t.Fatalf("backends before the first client left: %v, want only its own", backends())
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	parked := waitBackends(3)
	if !slices.Contains(parked, apid) {
		t.Fatalf("parked %v lack the first client's %s", parked, apid)
	}

	// Wave 2: three at once, holding on.
	taken0 := reuseTaken()
	var mu sync.Mutex
	var got []string
	var wave []*pgconn.PgConn
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			c, err := pgconn.Connect(ctx, conninfo)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			wave = append(wave, c)
			mu.Unlock()
			res, err := c.Exec(ctx, "SELECT pg_backend_pid()::text, to_regclass('minidle_t') IS NULL, current_setting('statement_timeout'), "+
				"(SELECT count(*) FROM pg_prepared_statements), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())").ReadAll()
			if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
				t.Errorf("wave 2 query: %v", err)
				return
			}
			row := res[0].Rows[0]
			if state := fmt.Sprintf("%s %s %s %s", row[1], row[2], row[3], row[4]); state != "t 0 0 0" {
				t.Errorf("backend %s shows %q of the first client's state, want \"t 0 0 0\"", row[0], state)
			}
			if c.ParameterStatus("application_name") != app {
				t.Errorf("told application_name %q", c.ParameterStatus("application_name"))
			}
			mu.Lock()
			got = append(got, string(row[0]))
			mu.Unlock()
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range wave {
			c.Close(ctx)
		}
	}()
	if t.Failed() {
		return
	}
	// None logged in for it: each took a parked session. Usually the
	// three parked before, but a fill the first one started may park
	// before a slower one asks, and go to it: also no login of its own.
	slices.Sort(got)
	if n := reuseTaken() - taken0; n != 3 || len(slices.Compact(slices.Clone(got))) != 3 {
		t.Fatalf("wave 2 got backends %v (parked before: %v), %d of them parked ones; want 3 distinct, all parked (none logged in for it)", got, parked, n)
	}
	// While the wave holds them, the minimum is made up again.
	all := waitBackends(6)
	t.Logf("parked before wave 2 %v; with wave 2 holding them %v", parked, all)

	for _, c := range wave {
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wave = nil
	// 3 + 3 left: parked up to pool_max_idle_per_key, the rest closed.
	waitBackends(4)
}
