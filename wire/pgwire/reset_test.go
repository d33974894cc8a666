package pgwire_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/wiretest"
)

// encode joins backend messages as a server would send them.
func encode(t *testing.T, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	var err error
	for _, m := range msgs {
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// scripted answers one query with answer, written a byte at a time so
// that every read of Exec's sees a message split, then checks what is
// left after it.
func scripted(t *testing.T, wantQuery string, answer []byte) net.Conn {
	t.Helper()
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		be := pgproto3.NewBackend(c, c)
		m, err := be.Receive()
		if err != nil {
			return err
		}
		if q, ok := m.(*pgproto3.Query); !ok || q.String != wantQuery {
			t.Errorf("server got %#v, want query %q", m, wantQuery)
		}
		for i := range answer {
			if _, err := c.Write(answer[i : i+1]); err != nil {
				return err
			}
		}
		_, err = io.Copy(io.Discard, c)
		return err
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

func TestResetReadsExactlyItsAnswer(t *testing.T) {
	answer := encode(t,
		&pgproto3.NotificationResponse{PID: 7, Channel: "stale", Payload: "for the last client"},
		&pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"},
		&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "x"},
		&pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	next := encode(t, &pgproto3.ParameterStatus{Name: "next", Value: "client's"})
	c := scripted(t, pgwire.ResetQuery, append(answer, next...))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	changed, err := pgwire.Reset(ctx, c, pgwire.ResetQuery)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed["TimeZone"] != "UTC" {
		t.Errorf("changed = %v, want TimeZone=UTC only", changed)
	}
	// What follows the answer is still on the connection, whole.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(next))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(next) {
		t.Errorf("after the reset the connection held %q (%v), want %q", got, err, next)
	}
}

func TestResetRefusesWhatIsNotAnIdleSession(t *testing.T) {
	for name, tc := range map[string]struct {
		answer []byte
		want   string
	}{
		"error": {encode(t, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "25001", Message: "DISCARD ALL cannot run inside a transaction block"},
			&pgproto3.ReadyForQuery{TxStatus: 'T'}), "25001"},
		"in a transaction": {encode(t, &pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")}, &pgproto3.ReadyForQuery{TxStatus: 'T'}), "not idle"},
		"a row":            {encode(t, &pgproto3.DataRow{Values: [][]byte{[]byte("1")}}), "unexpected message"},
		"oversized":        {[]byte{'N', 0x7f, 0, 0, 0}, "at most"},
		"cut short":        {encode(t, &pgproto3.ParameterStatus{Name: "a", Value: "b"})[:4], "read the answer"},
	} {
		t.Run(name, func(t *testing.T) {
			c := scripted(t, pgwire.ResetQuery, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := pgwire.Reset(ctx, c, pgwire.ResetQuery)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestSetParamsQuotes(t *testing.T) {
	want := `SET "DateStyle" = E'\\';SET application_name = 'a''; DROP TABLE x; --';`
	c := scripted(t, want, encode(t, &pgproto3.CommandComplete{CommandTag: []byte("SET")},
		&pgproto3.ParameterStatus{Name: "application_name", Value: "a'; DROP TABLE x; --"}, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	changed, err := pgwire.SetParams(ctx, c, map[string]string{"application_name": "a'; DROP TABLE x; --", "DateStyle": `\`})
	if err != nil || changed["application_name"] != "a'; DROP TABLE x; --" {
		t.Errorf("SetParams = %v, %v", changed, err)
	}
}

func TestExecEndsWithItsContext(t *testing.T) {
	c := scripted(t, "", nil) // the server never answers
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := pgwire.Ping(ctx, c); err == nil {
		t.Fatal("a ping nobody answered succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the ping took %s after its context ended", d)
	}
}
