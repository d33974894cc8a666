package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// TestReuseStormTakesLeftSessions: with session reuse, a storm of short
// clients (connect, mark the session, read the mark back, leave) is served
// by the sessions its first logins made, as a pooler's would be: a client
// waiting for its login's turn takes a session another client of its key
// left meanwhile. The guard allows 5 logins a second (burst 1) and a wait
// of 5 s, so at most 26 of the 80 clients could log in within their wait;
// without the hand-over the rest are refused with login_rate. Every
// client must be served, on a session that carries none of another's
// state, with no more logins than the rate allows; one client in ten
// leaves inside a transaction, so its session is closed, not handed on.
// Budget: about 5 s of CI time.
func TestReuseStormTakesLeftSessions(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	const rate, clients = 5, 80
	port := startProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.LoginRate, c.LoginBurst, c.LoginWait, c.MaxLoginsInProgress = rate, 1, config.Duration(5*time.Second), 32
		c.Observer = m.Upstream("storm", "postgres")
	})
	pids, problems, took := reuseStorm(t, port, clients, nil)
	served := 0
	for _, n := range pids {
		served += n
	}
	taken := gathered(t, m.Gatherer(), "rds_iam_proxy_session_reuse_total", "event", "taken")
	t.Logf("%d of %d clients served on %d backends in %v; %.0f took a session left by another", served, clients, len(pids), took.Round(time.Millisecond), taken)
	reportProblems(t, problems, false)
	// Each backend is one login: no more than the guard let through over
	// the storm (its burst, then its rate), with a second of slack for
	// the measure.
	if most := 1 + int(rate*(took.Seconds()+1)); len(pids) > most {
		t.Errorf("%d logins (backends) in %v, over the guard's %d", len(pids), took.Round(time.Millisecond), most)
	}
	if int(taken) < served-len(pids) {
		t.Errorf("session_reuse_total{event=taken} = %.0f, want at least %d (served %d on %d backends)", taken, served-len(pids), served, len(pids))
	}
}

// reuseStorm runs clients short sessions at once through the proxy on
// port (connect, check that the session starts clean, mark it, read the
// mark and a unique number back, leave; one in ten inside a transaction),
// calling during, when set, while they run. It returns the backends
// served on (pid -> sessions), what went wrong, and how long it took.
func reuseStorm(t *testing.T, port string, clients int, during func(ctx context.Context)) (map[string]int, []stormProblem, time.Duration) {
	t.Helper()
	conninfo := strings.Replace(dsn(port, iamUser), "connect_timeout=20", "connect_timeout=40", 1)
	told := func(err error) (string, bool) {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Sprintf("%s (%s)", pgErr.Message, pgErr.Code), true
		}
		return "", false
	}
	return stormOf(clients, during, told, func(ctx context.Context, i int) (string, error) {
		c, err := pgconn.Connect(ctx, conninfo)
		if err != nil {
			return "", err
		}
		defer c.Close(ctx)
		me := fmt.Sprintf("client-%d", i)
		// A session handed over must carry nothing of its last client's:
		// no setting, no temporary table of its own. pg_class lists every
		// session's committed temporary tables, so only those in this
		// session's temporary schema count (another client's, seen while
		// its backend still lives, are not a leak).
		res, err := c.Exec(ctx, "SELECT coalesce(current_setting('app.owner', true), ''), count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema();"+
			"SET app.owner = '"+me+"'; CREATE TEMP TABLE mine (x int);"+
			fmt.Sprintf("SELECT current_setting('app.owner'), pg_backend_pid(), %d", 1_000_000+i)).ReadAll()
		// The first check is read even when a later statement failed (a
		// leaked "mine" makes the CREATE fail): a leak is named as one.
		if len(res) > 0 && len(res[0].Rows) == 1 {
			first := res[0].Rows[0]
			if owner := string(first[0]); owner != "" || string(first[1]) != "0" {
				return "", fmt.Errorf("LEAK: %s's session starts with app.owner %q and %s temporary tables", me, owner, first[1])
			}
		}
		if err != nil {
			return "", err
		}
		if len(res) != 4 || len(res[0].Rows) != 1 || len(res[3].Rows) != 1 {
			return "", fmt.Errorf("unexpected results: %d", len(res))
		}
		last := res[3].Rows[0]
		if string(last[0]) != me || string(last[2]) != fmt.Sprint(1_000_000+i) {
			return "", fmt.Errorf("WRONG: %s read back owner %q and number %s", me, last[0], last[2])
		}
		if i%10 == 9 {
			// Leaves inside a transaction: its session is closed.
			if _, err := c.Exec(ctx, "BEGIN; SELECT 1").ReadAll(); err != nil {
				return "", err
			}
		}
		return string(last[1]), nil
	})
}

// stormOf runs session(ctx, i) for clients i at once, each within 40 s
// (hung past that), calling during, when set, while they run. It returns
// what the sessions returned (the upstream session each was on -> how
// many), the ones that failed (explained when told says the client was
// told why in its protocol), and how long it all took.
func stormOf(clients int, during func(ctx context.Context), told func(error) (string, bool), session func(ctx context.Context, i int) (string, error)) (map[string]int, []stormProblem, time.Duration) {
	var (
		mu       sync.Mutex
		on       = map[string]int{}
		problems []stormProblem
		wg       sync.WaitGroup
	)
	start := time.Now()
	dctx, stopDuring := context.WithCancel(context.Background())
	var dwg sync.WaitGroup
	if during != nil {
		dwg.Go(func() { during(dctx) })
	}
	for i := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second) // hung past this
			defer cancel()
			id, err := session(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				on[id]++
				return
			}
			if why, ok := told(err); ok {
				problems = append(problems, stormProblem{fmt.Sprintf("client %d told: %s", i, why), true})
			} else if ctx.Err() != nil {
				problems = append(problems, stormProblem{fmt.Sprintf("client %d hung: %v", i, err), false})
			} else {
				problems = append(problems, stormProblem{fmt.Sprintf("client %d: %v", i, err), false})
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	stopDuring()
	dwg.Wait()
	return on, problems, took
}

// stormProblem is a client of stormOf not served: explained when the
// client got an error in its protocol (the server's or the proxy's), not
// when it hung, lost its connection bare, or saw another's state.
type stormProblem struct {
	text      string
	explained bool
}

// reportProblems fails t for each problem (the first five), or for each
// unexplained one when explainedOK; it returns how many were explained.
func reportProblems(t *testing.T, problems []stormProblem, explainedOK bool) int {
	t.Helper()
	told, shown := 0, 0
	for _, p := range problems {
		if p.explained {
			told++
			if explainedOK {
				continue
			}
		}
		if shown++; shown <= 5 {
			t.Error(p.text)
		}
	}
	if shown > 5 {
		t.Errorf("... and %d more", shown-5)
	}
	return told
}

// TestReuseStormSessionsKilled: the storm of TestReuseStormTakesLeftSessions
// while the server terminates the user's sessions that have just been
// reset (parked, or being handed to a waiting client) (looked for every 2 ms): a
// client may be told the server ended its session (an ErrorResponse),
// but none hangs, loses its connection without a word, or sees another
// client's state, and most are still served.
// Budget: about 5 s of CI time.
func TestReuseStormSessionsKilled(t *testing.T) {
	w.enter(t)
	const clients = 60
	port := startProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.LoginRate, c.LoginBurst, c.LoginWait, c.MaxLoginsInProgress = 10, 1, config.Duration(5*time.Second), 32
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	// With claims a reset session is mostly handed over at once, so the
	// window to kill it is short: the killer polls every 2 ms, and the
	// storm runs again (up to three rounds) until the fault has happened.
	killed, served, rounds := 0, 0, 0
	var problems []stormProblem
	for rounds < 3 && (rounds == 0 || killed == 0) {
		rounds++
		pids, probs, took := reuseStorm(t, port, clients, func(ctx context.Context) {
			killed += killResetSessions(ctx, adm, "usename = '"+iamUser+"'", 2*time.Millisecond)
		})
		n := 0
		for _, k := range pids {
			n += k
		}
		served += n
		problems = append(problems, probs...)
		t.Logf("round %d: %d served on %d backends, %d not, in %v; %d parked sessions terminated so far", rounds, n, len(pids), len(probs), took.Round(time.Millisecond), killed)
	}
	told := reportProblems(t, problems, true)
	for i, p := range problems {
		if i < 3 {
			t.Logf("e.g. %s", p.text)
		}
	}
	t.Logf("%d told why not", told)
	if killed == 0 {
		t.Error("no parked session was terminated in three storms: the fault never happened")
	}
	if served < rounds*clients/2 {
		t.Errorf("only %d of %d clients served", served, rounds*clients)
	}
}

// killResetSessions terminates, every `every` until ctx ends, the
// backends of the users `users` (an SQL condition on usename) that are
// idle just after a reset (DISCARD ALL: parked, or being handed to a
// waiting client), through adm; it returns how many it terminated. With
// claims a reset session is handed on within milliseconds, so only a
// short period catches some.
func killResetSessions(ctx context.Context, adm *pgconn.PgConn, users string, every time.Duration) int {
	killed := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return killed
		case <-tick.C:
		}
		// Not within ctx: a query cut by its end would close adm.
		qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := adm.Exec(qctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "+users+
			" AND state = 'idle' AND query = 'DISCARD ALL'").ReadAll()
		cancel()
		if err == nil && len(res) == 1 && len(res[0].Rows) == 1 {
			n, _ := strconv.Atoi(string(res[0].Rows[0][0]))
			killed += n
		}
	}
}
