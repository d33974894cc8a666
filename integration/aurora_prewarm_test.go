package integration

import (
	"fmt"
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
	// counts is the prewarm counters, for a failure's message.
	counts := func() string {
		return fmt.Sprintf("dialed %d, dial_failed %d, taken %d, stale %d, recycled %d", dialed(), prewarmed(t, m, "dial_failed"),
			taken(), prewarmed(t, m, "stale"), prewarmed(t, m, "recycled"))
	}
	// takeEach: n logins, each on want, each on a connection made ready
	// for it. The counters are the proxy's, not the instance's: another
	// instance's refill, or one of an earlier take still under way, may
	// move them too. So a login that found none ready yet (took 0) is
	// tried again once a dial has landed, and only a login that took more
	// than one, or none within 10 s, fails.
	takeEach := func(n int, want string) {
		t.Helper()
		for range n {
			deadline := time.Now().Add(10 * time.Second)
			for {
				d, k := dialed(), taken()
				on(want)
				got := taken() - k
				if got > 1 {
					t.Fatalf("a login to %s took %d ready connections, want 1", want, got)
				}
				if got == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no login to %s took a ready connection within 10 s (%s)", want, counts())
				}
				for dialed() == d && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			}
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
