package postgres

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// TestProtocolErrorsAreClientErrors: a client that breaks the opening
// gets an ErrorResponse with the server's code for it, in the proxy's
// words, and the failure is counted as a protocol error.
func TestProtocolErrorsAreClientErrors(t *testing.T) {
	cases := []struct {
		name, in, code, text string
	}{
		{"not postgres", "GET / HTTP/1.1\r\n", pgwire.CodeProtocolViolation, "rds-iam-proxy: invalid startup packet length"},
		{"direct TLS", "\x16\x03\x01\x00", pgwire.CodeProtocolViolation,
			"rds-iam-proxy: the client started TLS directly (sslnegotiation=direct); rds-iam-proxy accepts plaintext on its local listener\x00Hconnect with sslmode=disable or prefer\x00"},
		{"protocol 2", "\x00\x00\x00\x08\x00\x02\x00\x00", pgwire.CodeFeatureNotSupported,
			"rds-iam-proxy: unsupported frontend protocol 2.0: rds-iam-proxy speaks protocol 3\x00"},
	}
	for _, c := range cases {
		client, server := net.Pipe()
		server.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			client.Write([]byte(c.in))
			client.Close()
		}()
		_, err := pgwire.ReadHello(server, pgwire.HelloOptions{})
		server.Close()
		pe, ok := failure.As(clientError(err))
		if !ok || sqlState(pe) != c.code || pe.Reason != failure.Protocol {
			t.Fatalf("%s: %v, want an %s failure", c.name, err, c.code)
		}
		var buf bytes.Buffer
		if err := writeFailure(&buf, pe); err != nil {
			t.Fatal(err)
		}
		if b := buf.Bytes(); b[0] != 'E' || !bytes.Contains(b, []byte(c.text)) || !bytes.Contains(b, []byte("SFATAL")) {
			t.Fatalf("%s: ErrorResponse %q", c.name, b)
		}
	}
}

func TestIsReplication(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "f": false, "fal": false, "FALSE": false, "n": false, "no": false, "of": false, "off": false,
		"o": true, "on": true, "true": true, "1": true, "yes": true, "database": true} {
		if got := isReplication(v); got != want {
			t.Errorf("isReplication(%q) = %v, want %v", v, got, want)
		}
	}
}
