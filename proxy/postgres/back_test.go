package postgres

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// slowWrites makes the first writes on a connection (the login's: the
// startup message and the password) return only after the bytes have gone
// out and then some: what a write looks like on a loaded machine, where the
// writer is descheduled. The server answers while the write has not
// returned yet. Later writes are quick, as most are.
type slowWrites struct {
	net.Conn
	slow  int // writes still to slow down; one goroutine writes
	delay time.Duration
}

func (c *slowWrites) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.slow > 0 {
		c.slow--
		time.Sleep(c.delay)
	}
	return n, err
}

// TestLoginHandsOverAQuietConnection is the regression test for sessions
// that hung under a connection storm: pgconn starts a background reader
// when a login write takes longer than 15 ms, and a read that reader still
// has in flight after the login would take the server's first reply away
// from the relay. Every write here is slow, so every login starts that
// reader; the session handed over must still get every answer.
func TestLoginHandsOverAQuietConnection(t *testing.T) {
	shortskip.Skip(t, "needs a PostgreSQL server")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := localpg.Start(ctx, localpg.Options{HBA: []string{
		"local all postgres trust",
		"host all all 127.0.0.1/32 password",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if err := srv.Exec(ctx, "CREATE ROLE slow_user LOGIN PASSWORD 'secret-pw'"); err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portStr)
	var d net.Dialer
	dialer, err := NewDialer(Upstream{Host: host, Port: port, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &slowWrites{Conn: c, slow: 2, delay: 40 * time.Millisecond}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		hc, err := dialer.Login(ctx, Login{User: "slow_user", Database: "postgres", Password: "secret-pw"})
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		// The relay's view: the raw connection, a query, its answer.
		hc.Conn.SetDeadline(time.Now().Add(5 * time.Second))
		fe := pgproto3.NewFrontend(hc.Conn, hc.Conn)
		fe.Send(&pgproto3.Query{String: "SELECT " + strconv.Itoa(i)})
		if err := fe.Flush(); err != nil {
			t.Fatalf("login %d: send query: %v", i, err)
		}
		var got string
		for {
			msg, err := fe.Receive()
			if err != nil {
				hc.Conn.Close()
				t.Fatalf("login %d: the first answer after the login never reached the relay: %v", i, err)
			}
			if dr, ok := msg.(*pgproto3.DataRow); ok {
				got = string(dr.Values[0])
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		hc.Conn.Close()
		if got != strconv.Itoa(i) {
			t.Fatalf("login %d: answer %q", i, got)
		}
	}
}
