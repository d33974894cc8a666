package postgres

import (
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestResuming: a server starting up (57P03) and a connection turned away
// before any answer are a resume; the server's other refusals are not.
func TestResuming(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}, true},
		{fmt.Errorf("failed to connect: %w", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}), true},
		{fmt.Errorf("tls error: %w", io.EOF), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{&pgconn.PgError{Code: "28000", Message: "PAM authentication failed for user \"app\""}, false},
		{&pgconn.PgError{Code: "53300", Message: "too many connections"}, false},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, false},
	} {
		if got := Resuming(c.err); got != c.want {
			t.Errorf("Resuming(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
