package postgres

import (
	"context"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// msg is one wire message: type, length, body.
func msg(typ byte, body string) []byte {
	n := len(body) + 4
	return append([]byte{typ, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// TestFarewellSpeaksOnlyBetweenMessages: the farewell is a FATAL 08006
// ErrorResponse naming the cause, sent only at a message boundary, and
// never after the server's own error, however the stream was chunked.
func TestFarewellSpeaksOnlyBetweenMessages(t *testing.T) {
	stream := append(append(msg('T', "rowdesc"), msg('D', strings.Repeat("x", 100))...), msg('C', "SELECT 1")...)
	cases := []struct {
		name  string
		sent  []byte
		speak bool
	}{
		{"nothing yet", nil, true},
		{"after whole messages", stream, true},
		{"inside a header", stream[:len(stream)-len(msg('C', "SELECT 1"))+2], false},
		{"inside a body", stream[:20], false},
		{"after ReadyForQuery", append(append([]byte{}, stream...), msg('Z', "I")...), true},
		{"after the server's FATAL", append(append([]byte{}, stream...), msg('E', "SFATAL")...), false},
		{"after an impossible length", []byte{'D', 0, 0, 0, 1}, false},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, 7, 1 << 20} {
			f := &farewell{}
			for p := tc.sent; len(p) > 0; {
				n := min(chunk, len(p))
				f.FromUpstream(p[:n])
				p = p[n:]
			}
			got := f.Message(syscall.ECONNRESET)
			if (got != nil) != tc.speak {
				t.Fatalf("%s (chunks of %d): message %q, want one: %v", tc.name, chunk, got, tc.speak)
			}
			if got == nil {
				continue
			}
			fe := pgproto3.NewFrontend(strings.NewReader(string(got)), io.Discard)
			m, err := fe.Receive()
			er, ok := m.(*pgproto3.ErrorResponse)
			if err != nil || !ok || er.Severity != "FATAL" || er.Code != pgwire.CodeConnectionLost ||
				!strings.Contains(er.Message, "rds-iam-proxy: the upstream reset the connection") || !strings.Contains(er.Hint, "connect again") {
				t.Fatalf("%s: %#v, %v", tc.name, m, err)
			}
		}
	}
}

// BenchmarkFarewellFromUpstream: following the framing of 16 KB relay
// chunks of small rows, the relay's added cost per chunk.
func BenchmarkFarewellFromUpstream(b *testing.B) {
	var chunk []byte
	for len(chunk) < 16<<10 {
		chunk = append(chunk, msg('D', strings.Repeat("r", 60))...)
	}
	chunk = chunk[:16<<10]
	f := &farewell{}
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		f.FromUpstream(chunk)
	}
}

// slowRead deschedules the goroutine reading the upstream for a moment
// before each read, as a loaded machine does.
type slowRead struct{ net.Conn }

func (c slowRead) Read(b []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return c.Conn.Read(b)
}

// TestServerFatalSurvivesAFailedWrite: the server sends its own FATAL and
// closes (idle_session_timeout, pg_terminate_backend) just as the client
// sends a query. The proxy's write of the query fails; the server's FATAL,
// already in the proxy's socket, is still what the client reads.
func TestServerFatalSurvivesAFailedWrite(t *testing.T) {
	client, proxyClient := netpair.TCP(t)
	proxyUpstream, server := netpair.TCP(t)
	go proxy.Relay(context.Background(), proxyClient, slowRead{proxyUpstream}, proxy.RelayOptions{Farewell: &farewell{}, Linger: time.Second})
	time.Sleep(10 * time.Millisecond) // the reader sleeps before its first read
	server.Write(msg('E', "SFATAL\x00C57P05\x00Mterminating connection due to idle-session timeout\x00\x00"))
	server.Close()
	for range 5 { // the client's queries: a write meets the reset
		client.Write(msg('Q', "select 1\x00"))
		time.Sleep(5 * time.Millisecond)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, _ := io.ReadAll(client)
	if !strings.Contains(string(all), "idle-session timeout") {
		t.Fatalf("the server's own FATAL never reached the client; it got %q", all)
	}
}
