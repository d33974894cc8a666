package loadgen

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Row is one line of a comparison: the same storm through the proxy and
// directly, in the same run and under the same load.
type Row struct {
	Kind Kind
	// Load names the machine's state: "idle", or "hog 2" (two busy
	// processes).
	Load          string
	Proxy, Direct *Result
}

// Ratio is the proxy's p50 connect time over the direct one; 0 when
// either is missing.
func (r Row) Ratio() float64 {
	if r.Proxy == nil || r.Direct == nil {
		return 0
	}
	d := r.Direct.ConnectPercentile(50)
	if d == 0 {
		return 0
	}
	return float64(r.Proxy.ConnectPercentile(50)) / float64(d)
}

// WriteTable prints rows as an aligned table: counts through the proxy
// (and directly, after the slash), connect p50/p99 both ways, the ratio of
// the p50s.
func WriteTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tclients x rounds\tload\tok\terrors\thung\twrong\tproxy p50\tproxy p99\tdirect p50\tdirect p99\tp50 ratio\t")
	for _, r := range rows {
		p, d := r.Proxy, r.Direct
		fmt.Fprintf(tw, "%s\t%d x %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Kind, size(p, d, func(s Storm) int { return s.Clients }), size(p, d, func(s Storm) int { return s.Rounds }), r.Load,
			pair(p, d, func(x *Result) int { return x.Count(OK) }),
			pair(p, d, func(x *Result) int { return x.Count(Failed) }),
			pair(p, d, func(x *Result) int { return x.Count(Hung) }),
			pair(p, d, func(x *Result) int { return x.Count(Wrong) }),
			ms(p, 50), ms(p, 99), ms(d, 50), ms(d, 99), ratio(r.Ratio()))
	}
	tw.Flush()
	fmt.Fprintln(w, "counts: through the proxy / directly; times: connect (TCP, TLS, login) per client")
}

func size(p, d *Result, f func(Storm) int) int {
	if p != nil {
		return f(p.Storm)
	}
	if d != nil {
		return f(d.Storm)
	}
	return 0
}

func pair(p, d *Result, f func(*Result) int) string {
	s := "-"
	if p != nil {
		s = fmt.Sprint(f(p))
	}
	if d != nil {
		s += fmt.Sprintf(" / %d", f(d))
	}
	return s
}

func ms(r *Result, p float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(r.ConnectPercentile(p))/float64(time.Millisecond))
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}
