package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"text/tabwriter"
)

// table is the suite's one table: a row per measure, with direct, proxy
// and PgBouncer figures where they apply, the proxy's ratio to direct
// (and to PgBouncer) and the target.
type table struct{ rows [][]string }

var header = []string{"measure", "direct", "proxy", "pgbouncer", "proxy/direct", "proxy/pgbouncer", "target"}

// reuseHeader are the columns of the session-reuse side (bench/suite
// reuse.go), after the others so that every other row keeps its shape.
var reuseHeader = []string{"proxy+reuse", "reuse/direct"}

// compare adds a row from per-side results; higher says whether a higher
// figure is better (the ratio is always proxy over the other side).
func (t *table) compare(name string, r map[string]pgbenchResult, f func(pgbenchResult) float64, format string, higher bool, target string) {
	d, p := f(r["direct"]), f(r["proxy"])
	row := []string{name, fmt.Sprintf(format, d), fmt.Sprintf(format, p), "-", ratio(p, d), "-", target}
	if b, ok := r["pgbouncer"]; ok {
		row[3], row[5] = fmt.Sprintf(format, f(b)), ratio(p, f(b))
	}
	if u, ok := r["reuse"]; ok {
		row = append(row, fmt.Sprintf(format, f(u)), ratio(f(u), d))
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
	cols := header
	for _, r := range t.rows {
		if len(r) > len(cols) { // a session-reuse column: see compare
			cols = append(slices.Clone(header), reuseHeader...)
		}
	}
	line(cols)
	sep := make([]string, len(cols))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		for len(r) < len(cols) {
			r = append(r, "-")
		}
		line(r)
	}
	tw.Flush()
}

// execOut runs a command and returns its combined output.
func execOut(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, prog, args...).CombinedOutput()
}
