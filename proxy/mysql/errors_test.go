package mysql

import (
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

func TestFitMessage(t *testing.T) {
	short := "rds-iam-proxy: all good"
	if got := fitMessage(short, "", 511); got != short {
		t.Fatalf("short message changed: %q", got)
	}
	long := "rds-iam-proxy: TLS verification failed: " + strings.Repeat("détail ", 100) + "Throttling: Rate exceeded"
	got := fitMessage(long, "--endpoint must be the RDS endpoint name", 511)
	if len(got) > 511 || !strings.HasSuffix(got, "Fix: --endpoint must be the RDS endpoint name") || !strings.HasPrefix(got, "rds-iam-proxy: TLS verification failed") || !utf8.ValidString(got) {
		t.Fatalf("fitted message (%d bytes) lost its fix or its start: %q", len(got), got)
	}
	// The cause is cut in its middle: its end, often the decisive
	// detail, stays.
	if !strings.Contains(got, "Throttling: Rate exceeded. Fix: ") {
		t.Fatalf("fitted message lost the end of its cause: %q", got)
	}
	// A fix too long to leave the cause room keeps its start, and the
	// cause keeps its head and tail.
	got = fitMessage(long, strings.Repeat("do this ", 100), 511)
	if len(got) > 511 || !strings.HasPrefix(got, "rds-iam-proxy: TLS verification failed") || !strings.Contains(got, "Throttling: Rate exceeded. Fix: do this") || !utf8.ValidString(got) {
		t.Fatalf("long fix: %d bytes: %q", len(got), got)
	}
	noFix := strings.Repeat("é", 400)
	if got := fitMessage(noFix, "", 511); len(got) > 511 || !utf8.ValidString(got) {
		t.Fatalf("message without a fix: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// TestClientErrors: a client that breaks the handshake is answered with
// the ERR the codec names, after the greeting (with a SQLSTATE, at the
// next sequence id), counted as a protocol error; a client that asks for
// TLS is told how to turn it off.
func TestClientErrors(t *testing.T) {
	sslRequest := (&mywire.HandshakeResponse{Caps: mywire.CapProtocol41 | mywire.CapSSL}).MarshalSSLRequest()
	cases := []struct {
		name string
		send []byte // the client's answer, framed
		code uint16
		seq  byte // the ERR's: after the client's packet, or 1 when the packet was cut short (its id unread)
		text string
	}{
		{"TLS asked", append([]byte{byte(len(sslRequest)), 0, 0, 1}, sslRequest...), mywire.ErHandshake, 2,
			"the client asked for TLS, which this listener does not offer. Fix: connect with TLS off"},
		{"garbage", append([]byte{5, 0, 0, 1}, "hello"...), mywire.ErHandshake, 2, "malformed handshake response"},
		{"cut short", []byte{50, 0, 0, 1, 1, 2}, mywire.ErNetReadError, 1, "the handshake packet ended early"},
	}
	for _, c := range cases {
		client, server := net.Pipe()
		server.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			mywire.ReadPacket(client, mywire.GreetingLimit)
			client.Write(c.send)
			client.Close()
		}()
		g := &mywire.Greeting{ServerVersion: "8.0.39", Scramble: make([]byte, 20), Caps: mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth}
		_, err := mywire.Greet(server, g, mywire.GreetOptions{})
		server.Close()
		e, pos := clientError(err)
		if e == nil || errno(e) != c.code || pos.seq != c.seq || !pos.greeted || e.Reason != failure.Protocol || !strings.Contains(e.Text(), c.text) {
			t.Errorf("%s: %v (%+v at %+v), want %d %q", c.name, err, e, pos, c.code, c.text)
		}
	}
}
