package loadgen

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Outcome is how one client ended.
type Outcome int

// The outcomes, worst last.
const (
	// OK: connected, got its own number back, closed.
	OK Outcome = iota
	// Failed: an error (connect refused, login failed, ...); see Err.
	Failed
	// Wrong: an answer that is not the number it asked for. Someone
	// else's bytes: the worst thing a proxy can do.
	Wrong
	// Hung: no answer within the storm's limit; the client was abandoned.
	Hung
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "error"
	case Wrong:
		return "wrong answer"
	case Hung:
		return "hung"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Client is what one client met.
type Client struct {
	Round, Index int
	Want, Got    string
	// Connect is the time to a logged-in connection (0 if it never was);
	// Total is connect, query and close.
	Connect, Total time.Duration
	Outcome        Outcome
	Err            string
}

// classify sets Outcome from the client's error: timedOut means its own
// limit ended it.
func (c *Client) classify(err error, timedOut bool, limit time.Duration) {
	switch {
	case err != nil && timedOut, c.Total > limit:
		c.Outcome = Hung
		if err != nil {
			c.Err = err.Error()
		}
	case err != nil:
		c.Outcome, c.Err = Failed, err.Error()
	case c.Got != c.Want:
		c.Outcome, c.Err = Wrong, fmt.Sprintf("asked for %s, got %q", c.Want, c.Got)
	default:
		c.Outcome = OK
	}
}

// Explained reports whether an error text is one the proxy explains: its
// own message, which names the cause and the fix. Such an error
// is a refusal a person can act on (a limit reached, credentials expired
// while AWS is down); anything else (a reset, a timeout, a server error
// the proxy passed on without a word) is an error nobody can explain.
func Explained(text string) bool {
	// Postgres clients show "rds-iam-proxy: CAUSE" and the fix on a line
	// "HINT:  ..." (libpq; loadgen's pgx client adds it the same way);
	// MySQL clients show the ERR packet's text, which the proxy fits in
	// 511 bytes keeping its "Fix:" part.
	return strings.Contains(text, "Fix: ") || strings.Contains(text, "\nHINT:  ")
}

// Result is a storm's outcome.
type Result struct {
	Storm   Storm
	Clients []Client
	Elapsed time.Duration
}

// Count is how many clients ended with o.
func (r *Result) Count(o Outcome) int {
	n := 0
	for _, c := range r.Clients {
		if c.Outcome == o {
			n++
		}
	}
	return n
}

// ConnectPercentile is the p-th percentile (0 < p <= 100) of the connect
// times of the clients that logged in; 0 when none did.
func (r *Result) ConnectPercentile(p float64) time.Duration {
	var ds []time.Duration
	for _, c := range r.Clients {
		if c.Connect > 0 {
			ds = append(ds, c.Connect)
		}
	}
	return Percentile(ds, p)
}

// Percentile is the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Group is one error text and how many clients met it.
type Group struct {
	Text      string
	Count     int
	Explained bool
}

// digits are replaced in error texts before grouping: ports, process
// ids and durations differ from client to client.
var digits = regexp.MustCompile(`[0-9]+`)

// groupKeyLen bounds a group's text: long errors differ only in detail.
const groupKeyLen = 400

// Errors groups the texts of the Failed clients, most frequent first.
func (r *Result) Errors() []Group {
	byText := map[string]*Group{}
	var order []*Group
	for _, c := range r.Clients {
		if c.Outcome != Failed {
			continue
		}
		key := digits.ReplaceAllString(c.Err, "N")
		if len(key) > groupKeyLen {
			key = key[:groupKeyLen] + "..."
		}
		g, ok := byText[key]
		if !ok {
			g = &Group{Text: key, Explained: Explained(c.Err)}
			byText[key] = g
			order = append(order, g)
		}
		g.Count++
	}
	slices.SortStableFunc(order, func(a, b *Group) int { return b.Count - a.Count })
	out := make([]Group, len(order))
	for i, g := range order {
		out[i] = *g
	}
	return out
}

// Unexplained counts the Failed clients whose error is not [Explained].
func (r *Result) Unexplained() int {
	n := 0
	for _, g := range r.Errors() {
		if !g.Explained {
			n += g.Count
		}
	}
	return n
}

// Bad counts what a storm must never have: hung clients, wrong answers and
// errors nobody can explain.
func (r *Result) Bad() int { return r.Count(Hung) + r.Count(Wrong) + r.Unexplained() }

// Summary is the result in a few lines: counts, connect times, error
// groups, and the first few hung or wrong clients.
func (r *Result) Summary() string {
	var b strings.Builder
	s := r.Storm
	fmt.Fprintf(&b, "%s -> %s %s:%d: %d clients x %d rounds in %s: ok %d, errors %d (unexplained %d), hung %d, wrong %d; connect p50 %s p99 %s\n",
		s.Kind, s.Target.Name, s.Target.Host, s.Target.Port, s.Clients, s.Rounds, r.Elapsed.Round(time.Millisecond),
		r.Count(OK), r.Count(Failed), r.Unexplained(), r.Count(Hung), r.Count(Wrong),
		r.ConnectPercentile(50).Round(time.Microsecond*100), r.ConnectPercentile(99).Round(time.Microsecond*100))
	for _, g := range r.Errors() {
		tag := "unexplained"
		if g.Explained {
			tag = "explained"
		}
		fmt.Fprintf(&b, "  %d x %s: %s\n", g.Count, tag, g.Text)
	}
	shown := 0
	for _, c := range r.Clients {
		if (c.Outcome == Hung || c.Outcome == Wrong) && shown < 5 {
			fmt.Fprintf(&b, "  round %d client %d %s after %s (connect %s): %s\n", c.Round+1, c.Index, c.Outcome,
				c.Total.Round(time.Millisecond), c.Connect.Round(time.Millisecond), c.Err)
			shown++
		}
	}
	return b.String()
}
