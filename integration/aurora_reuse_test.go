package integration

import (
	"context"
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
	followWithReuse(t, r, pgReuseSession(ctx, port), nil)
}

// pgReuseSession is a reuseSession through the proxy on port: it inserts
// a row and says on which instance and backend; it leaves cleanly
// (Terminate), so its session is parked.
func pgReuseSession(ctx context.Context, port string) reuseSession {
	return func() (backend, instance string, err error) {
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
}

// reuseSession is one client of a reuse test: it inserts a row, leaves
// cleanly (so its session is parked), and says its session's id (backend
// pid, connection id) and the instance it ran on.
type reuseSession func() (id, instance string, err error)

// followWithReuse checks session reuse across a switchover: clients on
// the writer get a parked session (an id seen before); after a
// switchover that keeps the old writer's sessions open (read-only now),
// once one client is on the new writer every client is, never on a
// session parked on the old one, and the new writer's sessions are
// reused in turn. Until the proxy sees the new writer a client may still
// land on the old one; transient says which errors it may get then (nil:
// any).
func followWithReuse(t *testing.T, r *auroraRig, session reuseSession, transient func(error) bool) {
	t.Helper()
	old := r.cluster.Writer()
	reusedOn(t, old, session)
	to := map[string]string{"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[old]
	if err := r.cluster.Failover(t.Context(), to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, on, err := session()
		if err == nil && on == to {
			break
		}
		if err != nil && transient != nil && !transient(err) {
			t.Fatalf("after the switchover to %s: %v", to, err)
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
	reusedOn(t, to, session)
}

// reusedOn runs sessions until one gets an id seen before, each on the
// writer want.
func reusedOn(t *testing.T, want string, session reuseSession) {
	t.Helper()
	seen := map[string]bool{}
	for range 20 { // the reset runs after the client left; the wait for it covers most of it
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
	t.Fatalf("no routed client got a parked session of the writer %s: %d sessions", want, len(seen))
}
