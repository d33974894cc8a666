package postgres

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// TestFarewellAtSessionAge: a session the upstream ends once it is about
// as old as the variant's limit is told the limit (its code and hint) and
// the end is logged; a younger one gets the lost-connection message.
func TestFarewellAtSessionAge(t *testing.T) {
	limit := &failure.Failure{Reason: failure.Upstream, Code: failure.Code{SQLState: "57P01"}, Cause: "ended at the session limit", Fix: "keep pool lifetimes short"}
	logs := &syncbuf.Buffer{}
	v := Variant{MaxSessionAge: 2 * time.Second, SessionLimit: limit}
	for _, tc := range []struct {
		name string
		age  time.Duration
		code string
	}{{"at the limit", 2 * time.Second, "57P01"}, {"just under it", 1850 * time.Millisecond, "57P01"}, {"young", time.Second, "08006"}} {
		a := v.sessionAge(slog.New(slog.NewTextHandler(logs, nil)))
		a.start = time.Now().Add(-tc.age)
		f := &farewell{age: a}
		f.FromUpstream(msg('Z', "I"))
		out := f.Message(io.EOF)
		fe := pgproto3.NewFrontend(bytes.NewReader(out), io.Discard)
		m, err := fe.Receive()
		e, ok := m.(*pgproto3.ErrorResponse)
		if err != nil || !ok || e.Code != tc.code {
			t.Errorf("%s: %T %+v (%v), want %s", tc.name, m, m, err, tc.code)
			continue
		}
		if tc.code == "57P01" && (!strings.Contains(e.Message, "session limit") || e.Hint != limit.Fix) {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
	if n := strings.Count(logs.String(), "session age limit"); n != 2 {
		t.Errorf("logged %d times, want 2: %s", n, logs.String())
	}
	if (Variant{}).sessionAge(slog.Default()) != nil {
		t.Error("PostgreSQL has a session age")
	}
	if got := (Variant{Database: "postgres"}).database(slog.New(slog.DiscardHandler), "admin"); got != "postgres" {
		t.Errorf("forced database: %s", got)
	}
	if got := (Variant{}).database(slog.New(slog.DiscardHandler), "app"); got != "app" {
		t.Errorf("database: %s", got)
	}
}
