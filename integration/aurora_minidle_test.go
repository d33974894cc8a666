package integration

import (
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// auroraMinIdle: with session reuse and pool_min_idle 2 behind the
// cluster endpoint, once a client routed to the writer has left, the pool
// logs in a session ahead on that very instance (2 parked), and clients
// take them there. After a switchover that keeps the old writer up
// (read-only), the router closes the sessions parked on both instances
// and the pool logs in no more on the old writer; once a client of the
// new writer leaves, 2 are kept parked there and clients take them.
// session makes one client through the proxy on port.
func auroraMinIdle(t *testing.T, r *auroraRig, session func(port string) reuseSession) {
	run := startRunning(t, r.ProxyConfig(), func(c *launch.Config) {
		c.SessionReuse, c.PoolMinIdle, c.PoolMaxIdlePerKey = true, 2, 4
		c.TopologyRefresh = config.Duration(300 * time.Millisecond)
	})
	pool, s := run.Pool(), session(run.Port())
	on := func(want string) string {
		t.Helper()
		id, at, err := s()
		if err != nil || at != want {
			t.Fatalf("a client got %q (%v), want the writer %s", at, err, want)
		}
		return id
	}
	old := r.cluster.Writer()
	first := on(old)
	waitFor(t, 10*time.Second, func() bool { return pool.Idle() == 2 })
	// The next client takes one of them (the first client's, or the one
	// logged in ahead); the pool logs in one more at once, and the
	// client's comes back: 3.
	if id := on(old); id == first {
		t.Logf("the second client got the first one's session %s", id)
	}
	waitFor(t, 10*time.Second, func() bool { return pool.Idle() == 3 })

	to := map[string]string{"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[old]
	if err := r.cluster.Failover(t.Context(), to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return pool.Idle() == 0 })
	time.Sleep(2500 * time.Millisecond) // the pool's reaper ticks every second: it would have logged in again
	if n := pool.Idle() + pool.Filling(); n != 0 {
		t.Fatalf("%d sessions parked or being logged in ahead after the writer changed, want none on the old writer", n)
	}
	on(to)
	waitFor(t, 10*time.Second, func() bool { return pool.Idle() == 2 })
	on(to)
	waitFor(t, 10*time.Second, func() bool { return pool.Idle() == 3 })
}
