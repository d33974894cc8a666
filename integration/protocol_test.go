package integration

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// TestBadFirstPackets sends what a confused or hostile client might and
// expects a FATAL 08P01 (where an answer makes sense) and a closed socket,
// never a hang; the proxy then still serves psql.
func TestBadFirstPackets(t *testing.T) {
	w.enter(t)
	port := startProxy(t, func(c *launch.Config) { c.HandshakeTimeout = config.Duration(2 * time.Second) })
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	startup := func(params ...string) []byte {
		body := be32(196608)
		for _, p := range params {
			body = append(append(body, p...), 0)
		}
		body = append(body, 0)
		return append(be32(uint32(len(body)+4)), body...)
	}
	cases := []struct {
		name string
		send []byte
		want string // in the ErrorResponse; "" = expect only a close
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "invalid startup packet length"},
		{"oversize length", append(be32(1_000_000), make([]byte, 100)...), "invalid startup packet length 1000000"},
		{"undersize length", be32(4), "invalid startup packet length 4"},
		{"protocol 2", append(be32(8), be32(2<<16)...), "unsupported frontend protocol 2.0"},
		{"no terminator", append(be32(14), append(be32(196608), "user\x00x"...)...), "invalid startup packet layout"},
		{"no user", startup("database", "appdb"), "no PostgreSQL user name"},
		{"direct TLS", []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01}, "started TLS directly"},
		{"two SSL requests", append(append(be32(8), be32(80877103)...), append(be32(8), be32(80877103)...)...), "unexpected SSL request"},
		{"truncated startup", append(be32(100), be32(196608)...), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.send)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil && !(isReset(err) && len(tc.send) > 64<<10) {
				// The proxy drains a little before closing so that its
				// error is not lost to a reset; only a client that keeps
				// sending more than that may see one.
				t.Fatalf("socket not closed cleanly by the proxy within 5 s: %v (read %q)", err, got)
			}
			// Single-byte 'N' answers to SSL requests may come first.
			got = []byte(strings.TrimLeft(string(got), "N"))
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("want a silent close, got %q", got)
				}
				return
			}
			msg := decodeError(t, got)
			if msg.Severity != "FATAL" || !strings.Contains(msg.Message, tc.want) || !strings.HasPrefix(msg.Message, "rds-iam-proxy: ") {
				t.Fatalf("error %s %s %q, want FATAL containing %q", msg.Severity, msg.Code, msg.Message, tc.want)
			}
			if want := "08P01"; tc.name != "protocol 2" && tc.name != "no user" && msg.Code != want {
				t.Fatalf("SQLSTATE %s, want %s", msg.Code, want)
			}
		})
	}
	out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT 'still serving'")
	if err != nil || strings.TrimSpace(out) != "still serving" {
		t.Fatalf("proxy stopped serving after bad packets: %v %q %s", err, out, stderr)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func decodeError(t *testing.T, b []byte) *pgproto3.ErrorResponse {
	t.Helper()
	if len(b) < 5 || b[0] != 'E' {
		t.Fatalf("want an ErrorResponse, got %q", b)
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if int(n)+1 != len(b) {
		t.Fatalf("ErrorResponse length %d, %d bytes received (anything after it?)", n, len(b))
	}
	var e pgproto3.ErrorResponse
	if err := e.Decode(b[5:]); err != nil {
		t.Fatal(err)
	}
	return &e
}

// TestSilentClientTimesOut: a client that connects and sends nothing is
// closed after the handshake timeout.
func TestSilentClientTimesOut(t *testing.T) {
	w.enter(t)
	port := startProxy(t, func(c *launch.Config) { c.HandshakeTimeout = config.Duration(500 * time.Millisecond) })
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("not closed: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("closed after %s, want about 500 ms", took)
	}
}

// TestEncryptionRequestsAndNewerProtocol drives the handshake by hand:
// GSSENCRequest and SSLRequest are both declined, then a protocol 3.2
// startup with a _pq_ option gets NegotiateProtocolVersion (3.0, option
// unsupported), AuthenticationOk, parameters, the proxy's key, and a usable
// session.
func TestEncryptionRequestsAndNewerProtocol(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	for _, req := range []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}} {
		fe.Send(req)
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("%T answered %q, %v; want N", req, b[0], err)
		}
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{
		"user": iamUser, "database": appDB, "application_name": "raw-it", "_pq_.test_option": "on",
	}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var sawNegotiate, sawAuthOK, sawKey bool
	params := map[string]string{}
	for done := false; !done; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.NegotiateProtocolVersion:
			sawNegotiate = m.NewestMinorProtocol == 0 && len(m.UnrecognizedOptions) == 1 && m.UnrecognizedOptions[0] == "_pq_.test_option"
		case *pgproto3.AuthenticationOk:
			sawAuthOK = true
		case *pgproto3.ParameterStatus:
			params[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			sawKey = m.ProcessID != 0 && len(m.SecretKey) == 4
		case *pgproto3.ReadyForQuery:
			done = true
		case *pgproto3.ErrorResponse:
			t.Fatalf("login failed: %s", m.Message)
		}
	}
	if !sawNegotiate || !sawAuthOK || !sawKey {
		t.Fatalf("negotiate=%v authOK=%v key=%v", sawNegotiate, sawAuthOK, sawKey)
	}
	if params["application_name"] != "raw-it" || params["server_version"] == "" {
		t.Fatalf("parameters not relayed: %v", params)
	}
	fe.Send(&pgproto3.Query{String: "SELECT current_user"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if row, ok := msg.(*pgproto3.DataRow); ok {
			if string(row.Values[0]) != iamUser {
				t.Fatalf("current_user %q", row.Values[0])
			}
			return
		}
	}
}
