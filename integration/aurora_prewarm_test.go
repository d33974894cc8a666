package integration

import (
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// auroraPrewarm: with --prewarm behind the cluster endpoint, connections
// are kept ready per instance (proxy.WarmSet). The first login to the
// writer starts its connections; later logins take them and land on the
// writer. After a switchover that keeps the old writer up (read-only),
// logins reach the new writer, whose connections are then made ready and
// taken in turn. A login that took a connection of another instance than
// the one it was routed to would land there: every login is checked for
// its instance and its INSERT (the old writer refuses writes), also in a
// burst of 100 clients at once at the end. try
// is one client through the proxy on port; transient says which errors
// a client may get while the proxy has not seen the new writer yet.
func auroraPrewarm(t *testing.T, r *auroraRig, engine string, try func(port string) attempt, transient func(string) bool) {
	m := metrics.New()
	port := r.proxy(t, func(c *launch.Config) {
		c.Prewarm, c.PrewarmMaxAge = 2, config.Duration(time.Minute) // no recycle during the test
		c.TopologyRefresh = config.Duration(300 * time.Millisecond)
		c.Observer = m.Upstream("aurora-prewarm", engine)
	})
	dialed := func() int { return prewarmed(t, m, "dialed") }
	taken := func() int { return prewarmed(t, m, "taken") }
	on := func(want string) {
		t.Helper()
		a := try(port)
		if a.err != "" || a.instance != want {
			t.Fatalf("a client got %q (%s), want the writer %s", a.instance, a.err, want)
		}
	}
	// takeEach: n logins, each on a connection made ready for it (the
	// refill of the one before is waited for), each on want. A refill of
	// an earlier take may still be under way when d is read, so the two
	// can land within one look: at least one more, not exactly one.
	takeEach := func(n int, want string) {
		t.Helper()
		for range n {
			d, k := dialed(), taken()
			on(want)
			if got := taken(); got != k+1 {
				t.Fatalf("a login to %s took %d ready connections, want 1", want, got-k)
			}
			waitFor(t, 10*time.Second, func() bool { return dialed() >= d+1 })
		}
	}

	old := r.cluster.Writer()
	on(old) // its login dials, and starts the writer's connections
	waitFor(t, 10*time.Second, func() bool { return dialed() == 2 })
	takeEach(3, old)

	to := map[string]string{"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[old]
	if err := r.cluster.Failover(t.Context(), to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := try(port)
		if a.err == "" && a.instance == to {
			break
		}
		if a.err != "" && !transient(a.err) {
			t.Fatalf("after the switchover to %s: %s", to, a.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after the switchover to %s a client still got %q (%s)", to, a.instance, a.err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The new writer's connections are made ready from that first login
	// on: a later one takes one.
	waitFor(t, 10*time.Second, func() bool {
		k := taken()
		on(to)
		return taken() > k
	})
	takeEach(3, to)
	// Many at once: the ready ones go in turn, the rest dial; every
	// client gets its session on the new writer, none waits past its
	// limit.
	const burst = 100
	results := make(chan attempt, burst)
	for range burst {
		go func() { results <- try(port) }()
	}
	for range burst {
		if a := <-results; a.err != "" || a.instance != to {
			t.Errorf("a client of the burst got %q (%s), want the writer %s", a.instance, a.err, to)
		}
	}
	if stale := prewarmed(t, m, "stale"); stale != 0 {
		t.Errorf("%d ready connections were dead when taken", stale)
	}
}
