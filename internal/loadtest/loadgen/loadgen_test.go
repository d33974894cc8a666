package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	for _, tc := range []struct {
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(3, 1, 2), 50, 2 * time.Millisecond},
		{ms(hundred...), 50, 50 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
	} {
		if got := Percentile(tc.ds, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.ds, tc.p, got, tc.want)
		}
	}
}

// The texts are the proxy's, as each client shows them.
func TestExplained(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`failed to connect to ...: server error: FATAL: rds-iam-proxy: too many connections: the proxy's limit of 5 is reached. Fix: close idle connections or raise --max-connections (SQLSTATE 53300)`, true},
		{`OperationalError: (1045, 'rds-iam-proxy: cannot sign an IAM token ... [...] Fix: STS could not be reached')`, true},
		{"failed to connect to ...: server error: FATAL: rds-iam-proxy: too many connections: the proxy's limit of 5 is reached (SQLSTATE 53300)\nHINT:  close idle connections or raise --max-connections", true},
		{`read tcp 127.0.0.1:5->127.0.0.1:6: read: connection reset by peer`, false},
		{`OperationalError: (2013, 'Lost connection to server during query')`, false},
		{`rds-iam-proxy: upstream refused the login: Lost connection to the database during login`, false},
	} {
		if got := Explained(tc.text); got != tc.want {
			t.Errorf("Explained(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// goRound: a client that answers wrong is Wrong, one that fails is
// Failed, one that outlives its limit (honouring its context) or ignores
// its context altogether is Hung, and Run's result counts them.
func TestGoRoundOutcomes(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	client := func(ctx context.Context, n int64) (time.Duration, string, error) {
		switch n % 5 {
		case 0:
			return time.Millisecond, fmt.Sprint(n), nil
		case 1:
			return time.Millisecond, fmt.Sprint(n + 1), nil // someone else's answer
		case 2:
			return 0, "", errors.New("rds-iam-proxy: no. Fix: yes")
		case 3:
			<-ctx.Done() // waits for its limit
			return time.Millisecond, "", ctx.Err()
		default:
			<-block // ignores its context
			return 0, "", nil
		}
	}
	s := Storm{Kind: PGX, Clients: 10, Limit: 200 * time.Millisecond, Base: 100}.withDefaults()
	start := time.Now()
	cs := goRound(context.Background(), s, 0, client, 300*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the round took %v with a 200ms limit and 300ms grace", d)
	}
	r := &Result{Storm: s, Clients: cs}
	want := map[Outcome]int{OK: 2, Wrong: 2, Failed: 2, Hung: 4}
	for o, n := range want {
		if got := r.Count(o); got != n {
			t.Errorf("%s: %d, want %d\n%s", o, got, n, r.Summary())
		}
	}
	if r.Unexplained() != 0 || r.Bad() != 6 {
		t.Errorf("unexplained %d, bad %d; want 0 and 6", r.Unexplained(), r.Bad())
	}
	for _, c := range cs {
		if c.Want != fmt.Sprint(100+c.Index) {
			t.Errorf("client %d wants %s", c.Index, c.Want)
		}
	}
	if !strings.Contains(r.Summary(), "wrong answer") || !strings.Contains(r.Summary(), "hung") {
		t.Errorf("summary lacks the bad clients:\n%s", r.Summary())
	}
}

// Errors group by text with the numbers taken out, most frequent first.
func TestErrorsGrouped(t *testing.T) {
	r := &Result{Clients: []Client{
		{Outcome: Failed, Err: "dial tcp 127.0.0.1:4001: connection refused"},
		{Outcome: Failed, Err: "rds-iam-proxy: limit 5. Fix: raise it"},
		{Outcome: Failed, Err: "dial tcp 127.0.0.1:4002: connection refused"},
		{Outcome: OK},
		{Outcome: Hung, Err: "no answer"},
	}}
	got := r.Errors()
	if len(got) != 2 || got[0].Count != 2 || got[0].Explained || !strings.Contains(got[0].Text, "N.N.N.N:N") ||
		got[1].Count != 1 || !got[1].Explained {
		t.Fatalf("groups %+v", got)
	}
	if r.Unexplained() != 2 || r.Bad() != 3 {
		t.Errorf("unexplained %d, bad %d", r.Unexplained(), r.Bad())
	}
}

// PGConnString quotes what it is given, and pgconn reads it back.
func TestPGConnString(t *testing.T) {
	ca, err := emulator.NewCA("loadgen test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca file.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := Target{Host: "127.0.0.1", Port: 5432, User: "o'neil", Password: `p\w d`, Database: "db", CAFile: caFile}
	cfg, err := pgconn.ParseConfig(PGConnString(tg))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != tg.User || cfg.Password != tg.Password || cfg.Database != "db" || cfg.Port != 5432 || cfg.TLSConfig == nil {
		t.Fatalf("parsed %+v", cfg)
	}
	plain, err := pgconn.ParseConfig(PGConnString(Target{Host: "127.0.0.1", Port: 1, User: "u", Database: "d"}))
	if err != nil || plain.TLSConfig != nil {
		t.Fatalf("plaintext target: TLS %v, %v", plain.TLSConfig, err)
	}
}

func TestWriteTable(t *testing.T) {
	res := func(ms int) *Result {
		return &Result{Storm: Storm{Clients: 2, Rounds: 1}, Clients: []Client{
			{Outcome: OK, Connect: time.Duration(ms) * time.Millisecond},
			{Outcome: Hung},
		}}
	}
	row := Row{Kind: Psycopg2, Load: "hog 2", Proxy: res(30), Direct: res(10)}
	if row.Ratio() != 3 {
		t.Errorf("ratio %v, want 3", row.Ratio())
	}
	var b strings.Builder
	WriteTable(&b, []Row{row, {Kind: PGX, Load: "idle", Proxy: res(5)}})
	out := b.String()
	for _, want := range []string{"psycopg2", "2 x 1", "hog 2", "1 / 1", "30.0 ms", "10.0 ms", "3.00x"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
