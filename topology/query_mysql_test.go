package topology

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// answers is a MySQL server's text answers to the topology SQL, by query.
type answers map[string][][][]byte

func (a answers) query(_ context.Context, q string) ([][][]byte, error) {
	rows, ok := a[q]
	if !ok {
		return nil, errors.New("ERROR 1146 (42S02): unknown query " + q)
	}
	return rows, nil
}

func row(vals ...string) [][]byte {
	r := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			r[i] = []byte(v)
		}
	}
	return r
}

func mysqlAnswers(ro string, rows ...[][]byte) answers {
	q := SQL[MySQL]
	return answers{q.Self: {row("inst-c")}, q.ReadOnly: {row(ro)}, q.Topology: rows}
}

func TestTopologyProbeMySQL(t *testing.T) {
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format("2006-01-02 15:04:05.000000") }
	a := mysqlAnswers("0",
		row("inst-a", "0", at(-time.Hour)),
		row("inst-b", "1", now.Format("2006-01-02 15:04:05")), // no fraction
		row("inst-c", "0", at(-time.Second)),
		row("inst-d", "0", "NULL"))
	p, err := ProbeMySQL(t.Context(), a.query)
	if err != nil {
		t.Fatal(err)
	}
	w, r := Members(p.Rows, now)
	if p.Self != "inst-c" || p.ReadOnly || w != "inst-b" || !slices.Equal(r, []string{"inst-c", "inst-d"}) {
		t.Fatalf("probe = %+v, members %q %q; want self inst-c, writable, writer inst-b, readers [inst-c inst-d] (inst-a's row is an hour old)", p, w, r)
	}
	if got := p.Rows[2].Updated; got.Location() != time.UTC || now.Sub(got) < 900*time.Millisecond || now.Sub(got) > 1100*time.Millisecond {
		t.Fatalf("inst-c updated %s, want a second before %s, in UTC", got, now)
	}

	a = mysqlAnswers("1", row("inst-b", "1", at(0)))
	if p, err := ProbeMySQL(t.Context(), a.query); err != nil || !p.ReadOnly {
		t.Fatalf("read-only instance: %+v %v", p, err)
	}
}

func TestTopologyProbeMySQLErrors(t *testing.T) {
	q := SQL[MySQL]
	for name, tc := range map[string]struct {
		a    answers
		want string
	}{
		"no topology table": {answers{q.Self: {row("x")}, q.ReadOnly: {row("0")}}, "replica_host_status"},
		"no server id":      {answers{q.Self: {}, q.ReadOnly: {row("0")}, q.Topology: nil}, "aurora_server_id"},
		"NULL server id":    {answers{q.Self: {row("NULL")}, q.ReadOnly: {row("0")}, q.Topology: nil}, "want one value"},
		"odd read-only":     {mysqlAnswers("maybe"), "not 1 or 0"},
		"short row":         {mysqlAnswers("0", row("inst-a", "1")), "2 columns"},
		"no server id row":  {mysqlAnswers("0", row("NULL", "1", "2026-01-01 00:00:00")), "without a server id"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ProbeMySQL(t.Context(), tc.a.query); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
