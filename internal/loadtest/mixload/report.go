package mixload

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Check is one line of a report: a figure, what it must be, and whether it
// is. Info lines (Want empty) only describe the run.
type Check struct {
	Name string
	Got  string
	Want string
	OK   bool
}

// Report is what a run found.
type Report struct {
	Title   string
	Elapsed time.Duration
	Checks  []Check
	// Problems are the first failures in words (errors, wrong answers,
	// hung sessions), for the person reading a FAIL.
	Problems []string
	// Connections is every TCP connection the run made to its target
	// (sessions, cancel requests, CLI sessions), to compare with the
	// proxy's count; CancelRequests is the part that were Postgres cancel
	// requests, which the proxy counts as refused with reason
	// cancel_request.
	Connections    int64
	CancelRequests int64
}

// Passed says whether every check held.
func (r *Report) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failed lists the checks that did not hold, one per line.
func (r *Report) Failed() string {
	var b strings.Builder
	for _, c := range r.Checks {
		if !c.OK {
			fmt.Fprintf(&b, "%s: got %s, want %s\n", c.Name, c.Got, c.Want)
		}
	}
	return b.String()
}

// Add appends checks (from the proxy's metrics, say).
func (r *Report) Add(cs ...Check) { r.Checks = append(r.Checks, cs...) }

// info records a figure that has no expected value.
func (r *Report) info(name string, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Got: fmt.Sprintf(format, args...), OK: true})
}

// equal requires got == want.
func (r *Report) equal(name string, got, want int64) {
	r.Checks = append(r.Checks, Check{Name: name, Got: fmt.Sprint(got), Want: fmt.Sprint(want), OK: got == want})
}

// equalStr requires got == want, for checksums.
func (r *Report) equalStr(name, got, want string) {
	r.Checks = append(r.Checks, Check{Name: name, Got: got, Want: want, OK: got == want})
}

// atLeast requires got >= want: the run did some of this kind of work, so
// that its other checks are not vacuous.
func (r *Report) atLeast(name string, got, want int64) {
	r.Checks = append(r.Checks, Check{Name: name, Got: fmt.Sprint(got), Want: fmt.Sprintf(">= %d", want), OK: got >= want})
}

// WriteTable prints the report as a table, then its problems and a PASS or
// FAIL line.
func (r *Report) WriteTable(w io.Writer) {
	if r.Elapsed > 0 {
		fmt.Fprintf(w, "%s (%s)\n", r.Title, r.Elapsed.Round(time.Second))
	} else {
		fmt.Fprintln(w, r.Title)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  check\tgot\twant\t")
	for _, c := range r.Checks {
		verdict := ""
		switch {
		case !c.OK:
			verdict = "FAIL"
		case c.Want != "":
			verdict = "ok"
		}
		want := c.Want
		if want == "" {
			want = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, c.Got, want, verdict)
	}
	tw.Flush()
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if r.Passed() {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}

// String is the table as text.
func (r *Report) String() string {
	var b strings.Builder
	r.WriteTable(&b)
	return b.String()
}
