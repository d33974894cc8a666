package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
)

// Storm sizes for CI (the long form is `go run ./bench/storm`): per
// client kind, stormClients clients start at once, stormIdleRounds rounds
// on an otherwise idle machine and stormHogRounds with stormHog busy
// processes, through the proxy; one round directly, for the comparison.
// At these sizes issue 13's hang (SyncConn removed from
// proxy/postgres/back.go) showed in every Postgres storm tried.
const (
	stormClients    = 300
	stormIdleRounds = 2
	stormHogRounds  = 1
	stormHog        = 2
)

// TestStorm: connection storms through the real binary (race-built) with
// both engines configured, each client kind in turn: every client
// connects, selects its own number and closes. No session may hang, get
// another's answer or meet an error the proxy cannot explain, idle or
// with the CPUs taken by a hog; afterwards the proxy's goroutines and open
// files are back to their baseline. Connect times through the proxy and
// directly (the same servers over TLS, as a password user) are measured
// in the same run and logged, not asserted.
//
// Budget: about 60-90 s on 2 vCPUs (4 kinds x 4 rounds of 300 clients,
// 3 through the proxy and 1 directly).
func TestStorm(t *testing.T) {
	w.enter(t)
	set := stormTargets(t, stormClients)
	p := startStormProxy(t, set, nil)

	// Warm up each engine once, so that the baseline includes what lives
	// as long as the proxy (the credentials refresher, pools of the
	// runtime), not only what the first login starts.
	for _, k := range []loadgen.Kind{loadgen.PGX, loadgen.GoMySQL} {
		requireAllOK(t, "warm-up", runStorm(t, loadgen.Storm{Kind: k, Target: p.target(k), Clients: 2}))
	}
	base := p.usage(t)
	t.Logf("proxy baseline: %s", base)

	var rows []loadgen.Row
	for _, k := range loadgen.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			row := loadgen.Row{Kind: k, Load: "idle"}
			row.Proxy = runStorm(t, loadgen.Storm{Kind: k, Target: p.target(k), Clients: stormClients, Rounds: stormIdleRounds})
			row.Direct = runStorm(t, loadgen.Storm{Kind: k, Target: set.Direct(k.Engine()), Clients: stormClients, Rounds: 1})
			hog, err := loadgen.StartHog(stormHog)
			if err != nil {
				t.Fatal(err)
			}
			hogged := loadgen.Row{Kind: k, Load: fmt.Sprintf("hog %d", stormHog)}
			hogged.Proxy = runStorm(t, loadgen.Storm{Kind: k, Target: p.target(k), Clients: stormClients, Rounds: stormHogRounds})
			hog.Stop()
			for _, r := range []*loadgen.Result{row.Proxy, row.Direct, hogged.Proxy} {
				requireClean(t, r)
			}
			rows = append(rows, row, hogged)
			p.waitBaseline(t, base)
		})
	}
	var table strings.Builder
	loadgen.WriteTable(&table, rows)
	t.Logf("storms through the proxy vs directly (a shared machine: compare within this run only):\n%s", table.String())
}
