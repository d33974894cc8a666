package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"text/tabwriter"
)

// table is the suite's one table: a row per measure, with direct, proxy
// and PgBouncer figures where they apply, the proxy's ratio to direct
// (and to PgBouncer) and the target.
type table struct{ rows [][]string }

var header = []string{"measure", "direct", "proxy", "pgbouncer", "proxy/direct", "proxy/pgbouncer", "target"}

// compare adds a row from per-side results; higher says whether a higher
// figure is better (the ratio is always proxy over the other side).
func (t *table) compare(name string, r map[string]pgbenchResult, f func(pgbenchResult) float64, format string, higher bool, target string) {
	d, p := f(r["direct"]), f(r["proxy"])
	row := []string{name, fmt.Sprintf(format, d), fmt.Sprintf(format, p), "-", ratio(p, d), "-", target}
	if b, ok := r["pgbouncer"]; ok {
		row[3], row[5] = fmt.Sprintf(format, f(b)), ratio(p, f(b))
	}
	t.rows = append(t.rows, row)
}

// pair adds a direct-versus-proxy row.
func (t *table) pair(name string, direct, proxy float64, format string, _ bool, target string) {
	t.rows = append(t.rows, []string{name, fmt.Sprintf(format, direct), fmt.Sprintf(format, proxy), "-", ratio(proxy, direct), "-", target})
}

// anchored adds a row with the proxy's figure and PgBouncer's, no direct.
func (t *table) anchored(name string, proxy, bouncer float64, format, target string) {
	t.rows = append(t.rows, []string{name, "-", fmt.Sprintf(format, proxy), fmt.Sprintf(format, bouncer), "-", ratio(proxy, bouncer), target})
}

// single adds a row with the proxy's figure only.
func (t *table) single(name, proxy, target string) {
	t.rows = append(t.rows, []string{name, "-", proxy, "-", "-", "-", target})
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// print writes the table as Markdown, aligned.
func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	line := func(cells []string) {
		fmt.Fprint(tw, "| ")
		for _, c := range cells {
			fmt.Fprintf(tw, "%s\t ", c)
		}
		fmt.Fprintln(tw)
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	tw.Flush()
}

// execOut runs a command and returns its combined output.
func execOut(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, prog, args...).CombinedOutput()
}
