package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/aurorastack"
)

// auroraRig is an emulated Aurora PostgreSQL cluster of three instances
// (alpha the writer, beta and gamma readers), each on a PostgreSQL server
// of its own that this test starts (never the world's), behind an AWS
// emulator of its own: nothing of the shared world changes.
type auroraRig struct {
	*aurorastack.Stack
	cluster *emulator.Cluster
}

// Budget: the three servers start in 2-15 s (a loaded 2-vCPU machine);
// the subtests take about 35 s together.
func startAuroraRig(t *testing.T, staleDNS time.Duration) *auroraRig {
	t.Helper()
	s, err := aurorastack.Start(t.Context(), aurorastack.Options{User: iamUser, Database: appDB, StaleDNS: staleDNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &auroraRig{Stack: s, cluster: s.Cluster}
}

// proxy starts a proxy for the cluster's writer endpoint, dialed through
// the stale-DNS forwarder, with the instances' dial addresses.
func (r *auroraRig) proxy(t *testing.T, mods ...func(*launch.Config)) string {
	t.Helper()
	return startProxyWith(t, r.ProxyConfig(), mods...)
}

// attempt is one client connection: when it began and ended, the
// instance its INSERT ran on, or its error.
type attempt struct {
	client     string
	start, end time.Time
	instance   string
	err        string
}

// insertSQL inserts a row and says where: one round trip.
const insertSQL = "INSERT INTO hits (client) VALUES ('%s'); SELECT aurora_db_instance_identifier()"

// pgxAttempt connects with conninfo, inserts, and says where; it gives
// up after limit.
func pgxAttempt(ctx context.Context, conninfo, client string, limit time.Duration) attempt {
	a := attempt{client: client, start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := pgconn.Connect(ctx, conninfo)
	if err != nil {
		a.err, a.end = err.Error(), time.Now()
		return a
	}
	defer c.Close(context.WithoutCancel(ctx))
	res, err := c.Exec(ctx, fmt.Sprintf(insertSQL, client)).ReadAll()
	switch {
	case err != nil:
		a.err = err.Error()
	case len(res) != 2 || len(res[1].Rows) != 1:
		a.err = fmt.Sprintf("unexpected results %v", res)
	default:
		a.instance = string(res[1].Rows[0][0])
	}
	a.end = time.Now()
	return a
}

// psqlAttempt is pgxAttempt with psql.
func psqlAttempt(ctx context.Context, psqlPath, port string) attempt {
	return cliAttempt(ctx, "psql", []string{"PGSSLMODE=disable"}, psqlPath,
		"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn(port, iamUser), "-c", fmt.Sprintf(insertSQL, "psql"))
}

// cliAttempt is one connection of a command-line client (bin with args,
// env added): the instance its output names, or its error and stderr.
func cliAttempt(ctx context.Context, client string, env []string, bin string, args ...string) attempt {
	a := attempt{client: client, start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		a.err = strings.TrimSpace(errb.String() + " " + err.Error())
	} else {
		a.instance = strings.TrimSpace(out.String())
	}
	a.end = time.Now()
	return a
}

// explained reports whether a client's error is one the proxy explained
// (its own words), not a raw read-only error or a dropped connection.
func explained(err string) bool { return strings.Contains(err, "rds-iam-proxy: ") }

func TestAuroraFailover(t *testing.T) {
	w.enter(t)
	r := startAuroraRig(t, 8*time.Second)
	t.Run("reader spread", func(t *testing.T) { auroraReaderSpread(t, r) })
	t.Run("new connections follow the writer", func(t *testing.T) { auroraFollow(t, r) })
	t.Run("cancel reaches the instance", func(t *testing.T) { auroraCancel(t, r) })
	t.Run("demoted writer sessions are cut", func(t *testing.T) { auroraDemotedCut(t, r) })
	t.Run("storm during a failover", func(t *testing.T) { auroraStorm(t, r) })
	t.Run("routed logins are paced per instance", func(t *testing.T) { auroraLoginRate(t, r) })
	t.Run("session reuse follows the writer", func(t *testing.T) { auroraReuse(t, r) })
	t.Run("pool_min_idle per instance follows the writer", func(t *testing.T) {
		auroraMinIdle(t, r, func(port string) reuseSession { return pgReuseSession(t.Context(), port) })
	})
	t.Run("prewarm per instance follows the writer", func(t *testing.T) {
		auroraPrewarm(t, r, "postgres", func(port string) attempt {
			return pgxAttempt(t.Context(), dsn(port, iamUser), "prewarm", 20*time.Second)
		},
			func(err string) bool { return strings.Contains(err, "25006") || explained(err) })
	})
}

// auroraReaderSpread: a reader listener spreads 30 sessions over the two
// readers, least connections first.
func auroraReaderSpread(t *testing.T, r *auroraRig) {
	port := r.proxy(t, func(c *launch.Config) { c.Route = "reader" })
	ctx := t.Context()
	count := map[string]int{}
	var conns []*pgconn.PgConn
	defer func() {
		for _, c := range conns {
			c.Close(ctx)
		}
	}()
	for range 30 {
		c, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			t.Fatalf("reader connection: %v", err)
		}
		conns = append(conns, c)
		res, err := c.Exec(ctx, "SELECT aurora_db_instance_identifier()").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		count[string(res[0].Rows[0][0])]++
	}
	if count["alpha"] != 0 || count["beta"] < 14 || count["beta"] > 16 || count["gamma"] < 14 || count["gamma"] > 16 {
		t.Fatalf("30 reader sessions went %v, want beta and gamma 15 each (+-1), none on the writer alpha", count)
	}
}

// auroraFollow: psql and pgx loop new connections, each doing an INSERT,
// across three failovers; the bad window (connections that fail or land
// on the old writer) after each is under 5 s although cluster DNS takes
// 8 s to follow, and every error the clients see is the proxy's.
func auroraFollow(t *testing.T, r *auroraRig) {
	port := r.proxy(t)
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	var attempts []attempt
	record := func(a attempt) {
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	psqlPath := w.pg.BinPath("psql")
	wg.Go(func() {
		for ctx.Err() == nil {
			record(psqlAttempt(ctx, psqlPath, port))
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			record(pgxAttempt(ctx, dsn(port, iamUser), "pgx", 25*time.Second))
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(1500 * time.Millisecond)
	var changes []failoverChange
	for _, to := range []string{"beta", "alpha", "beta"} {
		at := time.Now()
		if err := r.cluster.Failover(t.Context(), to, emulator.FailoverOptions{}); err != nil {
			stop()
			wg.Wait()
			t.Fatal(err)
		}
		changes = append(changes, failoverChange{at, to})
		time.Sleep(5 * time.Second)
	}
	stopAt := time.Now()
	stop()
	wg.Wait()
	if len(attempts) < 20 {
		t.Fatalf("only %d connections in 16 s", len(attempts))
	}
	checkFailoverWindows(t, attempts, "alpha", changes, stopAt, 5*time.Second)
}

// failoverChange is one failover: when it began, and the new writer.
type failoverChange struct {
	at     time.Time
	writer string
}

// checkFailoverWindows checks the client connections of a failover test:
// after each failover, the bad window (to the end of the last connection
// that failed or ran on another instance than the writer) is under limit,
// and every error a client saw is the proxy's explained one. first was
// the writer before changes; attempts cut short by the end of the test
// (ending after stopAt) do not count.
func checkFailoverWindows(t *testing.T, attempts []attempt, first string, changes []failoverChange, stopAt time.Time, limit time.Duration) {
	t.Helper()
	// An attempt is good when it ran on the writer as it was when it
	// began, or as a failover during it made it; it counts against the
	// last failover before it ended.
	writerAt := func(at time.Time) string {
		wr := first
		for _, ch := range changes {
			if !ch.at.After(at) {
				wr = ch.writer
			}
		}
		return wr
	}
	windows := make([]time.Duration, len(changes))
	bad := make([][]string, len(changes))
	for _, a := range attempts {
		if a.err != "" && !a.end.Before(stopAt) {
			continue // cut short by the end of the test
		}
		good := a.err == "" && (a.instance == writerAt(a.start) || a.instance == writerAt(a.end))
		if good {
			continue
		}
		i := -1
		for n, ch := range changes {
			if !ch.at.After(a.end) {
				i = n
			}
		}
		if i < 0 {
			t.Errorf("%s failed before any failover: %q %s", a.client, a.instance, a.err)
			continue
		}
		windows[i] = max(windows[i], a.end.Sub(changes[i].at))
		bad[i] = append(bad[i], fmt.Sprintf("%s +%s..+%s: %q %s", a.client, a.start.Sub(changes[i].at).Round(time.Millisecond),
			a.end.Sub(changes[i].at).Round(time.Millisecond), a.instance, a.err))
	}
	for i, ch := range changes {
		t.Logf("failover %d to %s: bad window %s (%d bad connections)", i+1, ch.writer, windows[i].Round(time.Millisecond), len(bad[i]))
		if windows[i] >= limit {
			t.Errorf("failover %d to %s: connections failed or landed on the old writer for %s (want < %s):\n  %s",
				i+1, ch.writer, windows[i], limit, strings.Join(bad[i], "\n  "))
		}
	}
	for _, a := range attempts {
		if a.err != "" && a.end.Before(stopAt) && !explained(a.err) {
			t.Errorf("%s at %s: an error the proxy did not explain: %s", a.client, a.start.Format("15:04:05.000"), a.err)
		}
	}
	t.Logf("%d connections", len(attempts))
}

// auroraCancel: a cancel request for a session on an instance endpoint
// goes to that instance, over TLS verified for its name.
func auroraCancel(t *testing.T, r *auroraRig) {
	port := r.proxy(t)
	ctx := t.Context()
	c, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// PostgreSQL ignores a cancel that comes before the query does, so
	// on a loaded machine one cancel might be early: it is sent again
	// every second until the query ends.
	ended := make(chan struct{})
	go func() {
		for wait := 300 * time.Millisecond; ; wait = time.Second {
			select {
			case <-ended:
				return
			case <-time.After(wait):
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c.CancelRequest(cctx)
			cancel()
		}
	}()
	start := time.Now()
	_, err = c.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
	close(ended)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || time.Since(start) > 15*time.Second {
		t.Fatalf("pg_sleep(30) with a cancel after 300 ms: %v after %s; want 57014 (canceled)", err, time.Since(start))
	}
}

// auroraDemotedCut: after a switchover that keeps the old writer's
// sessions, the proxy ends its own sessions there with FATAL 57P01 and
// its reason; a reader listener's session is left alone.
func auroraDemotedCut(t *testing.T, r *auroraRig) {
	ctx := t.Context()
	writerPort := r.proxy(t, func(c *launch.Config) { c.TopologyRefresh = config.Duration(300 * time.Millisecond) })
	readerPort := r.proxy(t, func(c *launch.Config) { c.Route = "reader" })
	old := r.cluster.Writer()
	ws, err := pgconn.Connect(ctx, dsn(writerPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close(ctx)
	rs, err := pgconn.Connect(ctx, dsn(readerPort, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close(ctx)
	on := func(c *pgconn.PgConn) (string, error) {
		res, err := c.Exec(ctx, "SELECT aurora_db_instance_identifier()").ReadAll()
		if err != nil {
			return "", err
		}
		return string(res[0].Rows[0][0]), nil
	}
	if got, err := on(ws); err != nil || got != old {
		t.Fatalf("writer session on %q (%v), want %s", got, err, old)
	}
	readerOn, err := on(rs)
	if err != nil || readerOn == old {
		t.Fatalf("reader session on %q (%v), want a reader", readerOn, err)
	}
	to := "gamma"
	if old == "gamma" || readerOn == "gamma" {
		to = "beta"
	}
	if to == readerOn || to == old {
		to = "alpha"
	}
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{KeepSessions: true}); err != nil {
		t.Fatal(err)
	}
	var cutErr error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, cutErr = on(ws); cutErr != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var pgErr *pgconn.PgError
	if !errors.As(cutErr, &pgErr) || pgErr.Code != "57P01" || !explained(pgErr.Message) || !strings.Contains(pgErr.Message, "no longer the writer") {
		t.Fatalf("the session on the demoted writer %s: %v; want FATAL 57P01 with the proxy's reason within 10 s", old, cutErr)
	}
	t.Logf("demoted session told: %s (HINT %s)", pgErr.Message, pgErr.Hint)
	if got, err := on(rs); err != nil || got != readerOn {
		t.Fatalf("the reader listener's session on %s after the failover: %q, %v; want it untouched", readerOn, got, err)
	}
}

// auroraStorm: 200 clients connect while a failover runs; each ends with
// its INSERT done or an error the proxy explained, none hangs.
func auroraStorm(t *testing.T, r *auroraRig) {
	port := r.proxy(t)
	ctx := t.Context()
	to := "alpha"
	if r.cluster.Writer() == "alpha" {
		to = "beta"
	}
	// Hung means no answer within the proxy's own bound on a login (the
	// handshake timeout, 30 s) and 10 s more: on a loaded 2-vCPU machine
	// 200 IAM logins (a PostgreSQL backend each) can take 20 s and more,
	// and a client that gives up first would see its own timeout, not the
	// proxy's answer.
	const hung = 40 * time.Second
	conninfo := strings.Replace(dsn(port, iamUser), "connect_timeout=20", "connect_timeout=50", 1)
	results := make([]attempt, 200)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // over 1 s
			results[i] = pgxAttempt(ctx, conninfo, "storm", hung+10*time.Second)
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := r.cluster.Failover(ctx, to, emulator.FailoverOptions{}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	checkStorm(t, results, to, hung)
}

// checkStorm checks the clients of a storm during a failover to to: each
// ended with its INSERT done or an error the proxy explained, none took
// longer than hung.
func checkStorm(t *testing.T, results []attempt, to string, hung time.Duration) {
	t.Helper()
	ok, failed := 0, 0
	var slowest time.Duration
	seen := map[string]bool{}
	for _, a := range results {
		slowest = max(slowest, a.end.Sub(a.start))
		if a.err != "" && !seen[a.err] && len(seen) < 5 {
			seen[a.err] = true
			t.Logf("a storm client was told: %s", a.err)
		}
		switch {
		case a.end.Sub(a.start) > hung:
			t.Errorf("a client took %s (hung?): %s", a.end.Sub(a.start), a.err)
		case a.err == "":
			ok++
		case !explained(a.err):
			t.Errorf("a client got an error the proxy did not explain: %s", a.err)
		default:
			failed++
		}
	}
	t.Logf("storm of %d during a failover to %s: %d ok, %d told why; the slowest answer %s", len(results), to, ok, failed, slowest.Round(time.Millisecond))
}
