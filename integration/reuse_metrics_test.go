package integration

import (
	"context"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// TestReuseMetrics: rds_iam_proxy_session_reuse_total counts each fate of
// a session: A leaves cleanly (parked), B takes A's session (taken) and
// leaves inside a transaction (discarded).
func TestReuseMetrics(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	port := startProxy(t, func(c *launch.Config) {
		c.SessionReuse, c.PoolMaxIdlePerKey = true, 1
		c.Observer = m.Upstream("reuse", "postgres")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	event := func(e string) int {
		return int(gathered(t, m.Gatherer(), "rds_iam_proxy_session_reuse_total", "event", e))
	}
	a := connectPG(t, ctx, dsn(port, iamUser))
	pid := one(t, ctx, a, "SELECT pg_backend_pid()")
	a.Close(ctx)
	waitFor(t, 10*time.Second, func() bool { return event("parked") == 1 })
	b := connectPG(t, ctx, dsn(port, iamUser))
	if got := one(t, ctx, b, "SELECT pg_backend_pid()"); got != pid {
		t.Fatalf("B is on backend %s, not A's parked %s", got, pid)
	}
	if got := event("taken"); got != 1 {
		t.Errorf("taken = %d after B got A's session, want 1", got)
	}
	execScript(t, ctx, b, "BEGIN; SELECT 1")
	b.Close(ctx)
	waitFor(t, 10*time.Second, func() bool { return event("discarded") == 1 })
	if got := event("parked"); got != 1 {
		t.Errorf("parked = %d after B left inside BEGIN, want still 1", got)
	}
}
