package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
)

// TestStormReuse: storms through the real binary (race-built) with session
// reuse and a tight login-rate guard (20 logins a second), 300 pgx and 300
// go-sql-driver clients at once: a client waiting for its login's turn
// takes a session another client of its key left (the MySQL ones before
// their greeting). An idle round, then a round with the CPUs taken by a
// hog while PostgreSQL terminates the sessions just reset (looked for
// every 10 ms; at least one must be). No client may hang, get another's
// answer or meet an error the proxy cannot explain; in the idle round
// every one is served, far past what the guard's logins alone could serve
// within --login-wait; afterwards the proxy's goroutines and open files
// are back to their baseline.
//
// Budget: about 20 s on 2 vCPUs.
func TestStormReuse(t *testing.T) {
	w.enter(t)
	const clients = 300
	set := stormTargets(t, clients)
	p := startStormProxy(t, set, nil, "session_reuse: true", "pool_max_idle_per_key: 2",
		"login_rate: 20", "login_burst: 5", "login_wait: 20s")
	kinds := []loadgen.Kind{loadgen.PGX, loadgen.GoMySQL}
	// The warm-up parks a session per engine and teaches the MySQL
	// listener its clients' key.
	for _, k := range kinds {
		requireAllOK(t, "warm-up", runStorm(t, loadgen.Storm{Kind: k, Target: p.target(k), Clients: 2}))
	}
	base := p.usage(t)
	t.Logf("proxy baseline: %s", base)
	storms := func() []*loadgen.Result {
		var ss []loadgen.Storm
		for _, k := range kinds {
			ss = append(ss, loadgen.Storm{Kind: k, Target: p.target(k), Clients: clients, Limit: 60 * time.Second})
		}
		return runConcurrently(t, ss)
	}

	start := time.Now()
	idle := storms()
	took := time.Since(start)
	for _, r := range idle {
		t.Log(strings.TrimSpace(r.Summary()))
	}
	requireAllOK(t, "idle round", idle...)
	// 20 logins a second with a burst of 5 let at most about 5+20*t
	// logins through in t: far fewer than the 600 clients served.
	// Each engine's endpoint has its own budget.
	taken := p.reuseTaken(t)
	if most := 2 * (5 + 20*took.Seconds()); float64(2*clients)-taken > most+2 {
		t.Errorf("%.0f of %d clients took a session another left, in %v: the rest (%.0f) is more than the guard's %.0f logins", taken, 2*clients, took.Round(time.Millisecond), float64(2*clients)-taken, most)
	}

	hog, err := loadgen.StartHog(stormHog)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := pgconn.Connect(actx, set.PG.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	killed := make(chan int, 1)
	go func() { killed <- killResetSessions(ctx, adm, "usename <> 'postgres'", 10*time.Millisecond) }()
	faulted := storms()
	stop()
	hog.Stop()
	n := <-killed
	t.Logf("%d sessions just reset were terminated during the loaded round", n)
	if n == 0 {
		t.Error("no session just reset was terminated: the fault never happened")
	}
	for _, r := range faulted {
		t.Log(strings.TrimSpace(r.Summary()))
		// A client on a session the server terminates is told so by the
		// server itself (57P01, "terminating connection due to
		// administrator command"), as a direct client would be.
		terminated := 0
		for _, c := range r.Clients {
			if c.Outcome == loadgen.Failed && !loadgen.Explained(c.Err) && strings.Contains(c.Err, "terminating connection due to administrator command") {
				terminated++
			}
		}
		if bad := r.Bad() - terminated; bad > 0 {
			t.Errorf("loaded round with sessions terminated, %s: %d clients hung, got another's answer or an error neither the proxy nor the server explained:\n%s", r.Storm.Kind, bad, r.Summary())
		}
		if ok := r.Count(loadgen.OK); ok < clients/2 {
			t.Errorf("loaded round, %s: only %d of %d served", r.Storm.Kind, ok, clients)
		}
	}
	p.waitBaseline(t, base)
	p.checkNoRace(t)
}

// reuseTaken sums rds_iam_proxy_session_reuse_total{event="taken"} over
// every upstream of the proxy.
func (p *stormProxy) reuseTaken(t *testing.T) float64 {
	t.Helper()
	_, body := p.get("/metrics")
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "rds_iam_proxy_session_reuse_total{") || !strings.Contains(line, `event="taken"`) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q", line)
		}
		sum += f
	}
	return sum
}
