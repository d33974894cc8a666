package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// auroraReuse: with session reuse a routed client gets the session parked
// on the very instance the router chose. After a switchover that keeps
// the old writer's sessions open (read-only now), the sessions parked
// there never reach a client routed to the new writer.
func auroraReuse(t *testing.T, r *auroraRig) {
	ctx := t.Context()
	port := r.proxy(t, func(c *launch.Config) {
		c.SessionReuse, c.TopologyRefresh = true, config.Duration(300*time.Millisecond)
	})
	// session inserts a row and says on which instance and backend; it
	// leaves cleanly (Terminate), so its session is parked.
	session := func() (backend, instance string, err error) {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			return "", "", err
		}
		defer c.Close(ctx)
		res, err := c.Exec(ctx, "INSERT INTO hits (client) VALUES ('reuse'); SELECT pg_backend_pid()::text, aurora_db_instance_identifier()").ReadAll()
		if err != nil {
			return "", "", err
		}
		if len(res) != 2 || len(res[1].Rows) != 1 {
			return "", "", fmt.Errorf("unexpected results %v", res)
		}
		return string(res[1].Rows[0][0]), string(res[1].Rows[0][1]), nil
	}
	old := r.cluster.Writer()
	first, on, err := session()
	if err != nil || on != old {
		t.Fatalf("first session on %q (%v), want the writer %s", on, err, old)
	}
	seen, reused := map[string]bool{first: true}, false
	for range 20 { // the reset runs after the client left; reuseWait covers most of it
		b, on, err := session()
		if err != nil || on != old {
			t.Fatalf("session on %q (%v), want the writer %s", on, err, old)
		}
		if seen[b] {
			reused = true
			break
		}
		seen[b] = true
		time.Sleep(100 * time.Millisecond)
	}
	if !reused {
		t.Fatalf("no routed client got a parked session of the writer %s: %d backends", old, len(seen))
	}
	to := "alpha"
	if old == "alpha" {
		to = "beta"
	}
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	// Until the proxy sees the new writer a client may still land on the
	// old one (read-only: its INSERT fails); from then on every client is
	// on the new writer, never on a session parked on the old one.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, on, err := session()
		if err == nil && on == to {
			break
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
}
