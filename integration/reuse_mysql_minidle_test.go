package integration

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// TestReuseMySQLPoolMinIdle is TestReusePoolMinIdle for MySQL: with
// pool_min_idle 3, once the first client has left (with a user variable,
// a temporary table and a named lock behind it), the proxy logs in
// sessions in the background until 3 are parked; a wave of 3 clients at
// once is greeted by those 3 (two of which no client ever used) with none
// of the first client's state; while the wave holds them the pool logs in
// 3 more; when the wave leaves, the parked sessions stop at
// pool_max_idle_per_key.
func TestReuseMySQLPoolMinIdle(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	r := startReuseMySQL(t, 4, func(c *launch.Config) { c.PoolMinIdle, c.Observer = 3, m.Upstream("minidle", "mysql") })
	reuseTaken := func() int {
		return int(gathered(t, m.Gatherer(), "rds_iam_proxy_session_reuse_total", "event", "taken"))
	}
	port := r.Port()
	ctx := testCtx(t, 90*time.Second)
	adm := myAdmin(t)
	sessions := func() []string {
		rows, err := adm.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID", iamUser)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	waitSessions := func(n int) []string {
		t.Helper()
		var ids []string
		waitFor(t, 30*time.Second, func() bool { ids = sessions(); return len(ids) == n })
		return ids
	}
	// The server's sessions of the user are counted: an earlier test's
	// may still be closing, so wait for none rather than fail at once.
	waitSessions(0)

	// Wave 1: one client, which leaves state behind it.
	a := myConnect(t, ctx, port)
	aid := a.one(t, ctx, "SELECT CONNECTION_ID()")
	a.exec(t, ctx, "SET @minidle = 42")
	a.exec(t, ctx, "CREATE TEMPORARY TABLE minidle_t (x int)")
	a.exec(t, ctx, "DO GET_LOCK('minidle_lock', 0)")
	if ids := sessions(); len(ids) != 1 {
		t.Fatalf("sessions before the first client left: %v, want only its own", ids)
	}
	a.quit(t)
	parked := waitSessions(3)
	if !slices.Contains(parked, aid) {
		t.Fatalf("parked %v lack the first client's %s", parked, aid)
	}
	waitParkedMy(t, r, 3)

	// Wave 2: three at once, holding on.
	taken0 := reuseTaken()
	var mu sync.Mutex
	var got []string
	var wave []*myClient
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			c := myConnect(t, ctx, port)
			mu.Lock()
			wave = append(wave, c)
			mu.Unlock()
			id := c.one(t, ctx, "SELECT CONNECTION_ID()")
			state := c.one(t, ctx, "SELECT CONCAT(COALESCE(@minidle, 'none'), ' ', COALESCE(IS_USED_LOCK('minidle_lock'), 'free'), ' ', DATABASE())")
			if want := "none free " + appDB; state != want {
				t.Errorf("session %s shows %q, want %q: the first client's state leaked", id, state, want)
			}
			if tmp := c.one(t, ctx, "SELECT COUNT(*) FROM minidle_t"); tmp != "error" {
				t.Errorf("session %s sees the first client's temporary table (%s rows)", id, tmp)
			}
			mu.Lock()
			got = append(got, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// None logged in for it: each took a parked session (usually the
	// three parked before; a fill may park before a slower one asks).
	slices.Sort(got)
	if n := reuseTaken() - taken0; n != 3 || len(slices.Compact(slices.Clone(got))) != 3 {
		t.Fatalf("wave 2 got sessions %v (parked before: %v), %d of them parked ones; want 3 distinct, all parked (none logged in for it)", got, parked, n)
	}
	// While the wave holds them, the minimum is made up again.
	all := waitSessions(6)
	t.Logf("parked before wave 2 %v; with wave 2 holding them %v", parked, all)

	for _, c := range wave {
		c.quit(t)
	}
	// 3 + 3 left: parked up to pool_max_idle_per_key, the rest closed.
	waitSessions(4)
	waitParkedMy(t, r, 4)
}

// TestReuseMySQLParkedSessionEnded: a session the server ends while it is
// parked (KILL by an administrator, wait_timeout, a restart) is never
// handed to a client. Taken within proxy.QuietFor of its reset, the proxy
// looks at its socket instead of sending a COM_PING; later it pings. Both
// ways the next client is greeted by a live session and its query works.
func TestReuseMySQLParkedSessionEnded(t *testing.T) {
	w.enter(t)
	r := startReuseMySQL(t, 1)
	port := r.Port()
	ctx := testCtx(t, 60*time.Second)
	adm := myAdmin(t)
	for _, wait := range []time.Duration{0, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("taken %v after the end", wait), func(t *testing.T) {
			a := myConnect(t, ctx, port)
			id := a.one(t, ctx, "SELECT CONNECTION_ID()")
			a.quit(t)
			waitParkedMy(t, r, 1)
			start := time.Now()
			if _, err := adm.ExecContext(ctx, "KILL "+id); err != nil {
				t.Fatal(err)
			}
			waitGoneMy(t, ctx, adm, id)
			time.Sleep(wait)
			b := myConnect(t, ctx, port)
			got := b.one(t, ctx, "SELECT CONNECTION_ID()")
			if _, err := strconv.Atoi(got); err != nil || got == id {
				t.Fatalf("the client's CONNECTION_ID() gave %q (the killed session was %s): it was handed the killed session", got, id)
			}
			b.quit(t)
			waitParkedMy(t, r, 1) // b's session, for the next round
			t.Logf("killed %s, the client got %s, %v after the kill", id, got, time.Since(start).Round(time.Millisecond))
		})
	}
}
