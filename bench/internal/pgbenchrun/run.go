// Package pgbenchrun runs the throwaway server's own pgbench for a while
// and reads its figures, so the Postgres benchmarks (bench/suite,
// bench/pgbench, bench/connrate) parse pgbench's report in one place.
package pgbenchrun

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Result is one pgbench run's figures; zero where pgbench did not report one.
type Result struct {
	TPS, LatencyMS float64
	Txns           int64
}

var (
	tpsRE     = regexp.MustCompile(`tps = ([0-9.]+)`)
	latencyRE = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	txnsRE    = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

// Run runs pgbench -n for d (at least one second, pgbench's smallest -T)
// with args against conninfo. A run that reports no throughput is an
// error carrying pgbench's output, so a broken side shows why.
func Run(ctx context.Context, pg *localpg.Server, args []string, d time.Duration, conninfo string) (Result, error) {
	full := append([]string{"-n", "-T", strconv.Itoa(max(1, int(d.Seconds())))}, args...)
	full = append(full, conninfo)
	out, err := exec.CommandContext(ctx, pg.BinPath("pgbench"), full...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	var r Result
	if m := tpsRE.FindSubmatch(out); m != nil {
		r.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := latencyRE.FindSubmatch(out); m != nil {
		r.LatencyMS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := txnsRE.FindSubmatch(out); m != nil {
		r.Txns, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if r.TPS == 0 {
		return r, fmt.Errorf("pgbench %s: no tps in output:\n%s", strings.Join(args, " "), out)
	}
	return r, nil
}
