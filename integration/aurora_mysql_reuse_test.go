package integration

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	followWithReuse(t, r, myReuseSession(ctx, db), func(err error) bool {
		// The old writer's read-only refusal, or the proxy ending a
		// session it cut there.
		return readOnly(err.Error()) || strings.Contains(err.Error(), "1053")
	})
}

// myReuseSession is a reuseSession on db (through the proxy): it inserts
// a row and says its connection id and instance; the driver quits
// (COM_QUIT) when the connection closes, so a session left this way is
// parked.
func myReuseSession(ctx context.Context, db *sql.DB) reuseSession {
	return func() (id, instance string, err error) {
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
}

// auroraMySQLReuseConcurrent: 200 go-sql-driver clients loop sessions
// through a reusing proxy in front of the Aurora MySQL cluster while the
// writer changes as fo says (a switchover that keeps the old writer's
// sessions open, or a failover that cuts them and restarts it). Each
// session first checks that it inherits nothing (its @owner user variable
// is NULL: COM_RESET_CONNECTION ran), then marks it as its own and reads
// it back after an INSERT. No session may carry another client's mark,
// hang, or fail other than as the writer change explains (the old
// writer's 1290, the proxy's 1053 or its own words) within 5 s of it;
// after that every client is on the new writer; sessions were reused on
// both sides of it.
func auroraMySQLReuseConcurrent(t *testing.T, r *auroraRig, fo emulator.FailoverOptions) {
	port := r.proxy(t, func(c *launch.Config) {
		c.SessionReuse, c.TopologyRefresh = true, config.Duration(300*time.Millisecond)
	})
	ctx := testCtx(t, 120*time.Second)
	db, err := mysqlProxyDB(port, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type outcome struct {
		id, instance string
		err          error
		start, at    time.Time // when it began and ended
	}
	// session runs one client session, marked by who. It is judged by
	// when it began: one routed to the old writer just before the change
	// may, on a loaded machine, end well after the window.
	session := func(who string) (o outcome) {
		start := time.Now()
		defer func() { o.start, o.at = start, time.Now() }()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second) // hung past this
		defer cancel()
		c, err := db.Conn(sctx)
		if err != nil {
			return outcome{err: err}
		}
		defer c.Close()
		var mark sql.NullString
		if err := c.QueryRowContext(sctx, "SELECT @owner").Scan(&mark); err != nil {
			return outcome{err: err}
		}
		if mark.Valid {
			return outcome{err: fmt.Errorf("LEAK: %s's session starts with @owner = %q", who, mark.String)}
		}
		if _, err := c.ExecContext(sctx, "SET @owner = ?", who); err != nil {
			return outcome{err: err}
		}
		if _, err := c.ExecContext(sctx, "INSERT INTO hits (client) VALUES (?)", who); err != nil {
			return outcome{err: err}
		}
		if err := c.QueryRowContext(sctx, "SELECT @owner, CONNECTION_ID()").Scan(&mark, &o.id); err != nil {
			return outcome{err: err}
		}
		if mark.String != who {
			return outcome{err: fmt.Errorf("LEAK: %s's session has @owner = %q", who, mark.String)}
		}
		o.err = c.QueryRowContext(sctx, selfSQL).Scan(&o.instance)
		return o
	}
	old := r.cluster.Writer()
	to := map[string]string{"alpha": "beta", "beta": "gamma", "gamma": "alpha"}[old]
	// A client may still land on the old writer until the proxy reads the
	// new topology (every 300 ms here, faster once suspected).
	const clients, window = 200, 5 * time.Second
	results := make([][]outcome, clients)
	stop := make(chan struct{})
	var done atomic.Int64 // sessions that ended well
	var wg sync.WaitGroup
	for g := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := session(fmt.Sprintf("c%d-%d", g, i))
				if o.err == nil {
					done.Add(1)
				}
				results[g] = append(results[g], o)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	// The switchover once the old writer has served every client about
	// twice (their logins take a while on a loaded machine: the login-rate
	// guard lets 150 a second through), so that sessions are reused there.
	for deadline := time.Now().Add(60 * time.Second); done.Load() < 2*clients; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the old writer served %d sessions to %d clients in 60 s", done.Load(), clients)
		}
	}
	if err := r.cluster.Failover(ctx, to, fo); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	at := time.Now()
	time.Sleep(window + 2*time.Second) // sessions past the window, on the new writer only
	close(stop)
	wg.Wait()
	seen := map[string]map[string]int{} // instance -> connection id -> sessions
	switchErrs, told := 0, map[string]bool{}
	for g, rs := range results {
		for i, o := range rs {
			switch {
			case o.err != nil && strings.Contains(o.err.Error(), "LEAK"):
				t.Errorf("client %d session %d: %v", g, i, o.err)
			case o.err != nil && (readOnly(o.err.Error()) || strings.Contains(o.err.Error(), "1053") || explained(o.err.Error())) && o.start.Before(at.Add(window)):
				switchErrs++ // the writer change, explained
				if kind := o.err.Error(); !told[kind] && len(told) < 3 {
					told[kind] = true
					t.Logf("a client was told: %s", kind)
				}
			case o.err != nil:
				t.Errorf("client %d session %d at %s (switchover %s): %v", g, i, o.at.Format("15:04:05.000"), at.Format("15:04:05.000"), o.err)
			case o.start.After(at.Add(window)) && o.instance != to:
				t.Errorf("client %d session %d began %s after the switchover to %s, on %s", g, i, o.start.Sub(at), to, o.instance)
			case o.instance != old && o.instance != to:
				t.Errorf("client %d session %d on %s, neither writer", g, i, o.instance)
			default:
				if seen[o.instance] == nil {
					seen[o.instance] = map[string]int{}
				}
				seen[o.instance][o.id]++
			}
		}
	}
	t.Logf("writer change from %s to %s: %d sessions failed as it explains", old, to, switchErrs)
	for _, inst := range []string{old, to} {
		sessions, reused := 0, 0
		for _, n := range seen[inst] {
			sessions += n
			reused += n - 1
		}
		t.Logf("%s: %d sessions on %d connections", inst, sessions, len(seen[inst]))
		if reused == 0 {
			t.Errorf("no session on %s was reused (%d sessions)", inst, sessions)
		}
	}
}
