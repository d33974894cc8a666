package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// auroraMySQLReuse is auroraReuse for Aurora MySQL, whose session is
// taken before the client's greeting: a routed go-sql-driver client gets
// a session parked on the writer (the same connection id twice), and
// after a switchover that keeps the old writer's sessions open
// (read-only now) no client gets one of them; the new writer's sessions
// are reused in turn.
func auroraMySQLReuse(t *testing.T, r *auroraRig) {
	port := r.proxy(t, func(c *launch.Config) {
		c.SessionReuse, c.TopologyRefresh = true, config.Duration(300*time.Millisecond)
	})
	ctx := testCtx(t, 90*time.Second)
	db, err := mysqlProxyDB(port, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// session inserts a row and says its connection id and instance; the
	// driver quits (COM_QUIT) when the connection closes, so a session
	// left this way is parked.
	session := func() (id, instance string, err error) {
		c, err := db.Conn(ctx)
		if err != nil {
			return "", "", err
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('reuse')"); err != nil {
			return "", "", err
		}
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return "", "", err
		}
		// The emulated fronts answer the topology queries as they come,
		// alone (see emulator/mysqlshim.go).
		err = c.QueryRowContext(ctx, selfSQL).Scan(&instance)
		return id, instance, err
	}
	// reusedOn runs sessions until one gets a connection id seen before,
	// each on instance want.
	reusedOn := func(want string) {
		t.Helper()
		seen := map[string]bool{}
		for range 20 { // the reset runs after the client left; parkedWait covers most of it
			id, on, err := session()
			if err != nil || on != want {
				t.Fatalf("session on %q (%v), want the writer %s", on, err, want)
			}
			if seen[id] {
				return
			}
			seen[id] = true
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no routed client got a parked session of the writer %s: %d connection ids", want, len(seen))
	}
	old := r.cluster.Writer()
	reusedOn(old)
	to := map[string]string{"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[old]
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	// Until the proxy sees the new writer a client may still land on the
	// old one (read-only: its INSERT fails with 1290); from then on every
	// client is on the new writer, never on a session parked on the old one.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, on, err := session()
		if err == nil && on == to {
			break
		}
		if err != nil && !readOnly(err.Error()) && !strings.Contains(err.Error(), "1053") {
			t.Fatalf("after the switchover to %s: %v (want success, the old writer's read-only refusal, or the proxy ending a session on it)", to, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after the switchover to %s a client still got %q (%v)", to, on, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 5 {
		if _, on, err := session(); err != nil || on != to {
			t.Fatalf("client %d after the switchover to %s: on %q (%v)", i, to, on, err)
		}
	}
	reusedOn(to)
	t.Logf("session reuse followed the writer from %s to %s", old, to)
}
