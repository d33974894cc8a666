package pgwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxPasswordLen bounds a PasswordMessage: IAM tokens with a session token
// are under 2 KB; PostgreSQL's own limit for auth packets is about 1 KB
// more than that for SCRAM, far below this.
const maxPasswordLen = 16 << 10

// RequestPassword asks the client for a cleartext password
// (AuthenticationCleartextPassword) and returns what it sends.
func RequestPassword(c io.ReadWriter) (string, error) {
	req, err := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if err != nil {
		return "", err
	}
	if _, err := c.Write(req); err != nil {
		return "", fmt.Errorf("request password: %w", err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if hdr[0] != 'p' {
		return "", protocolErrorf("expected a password message, got message type %q", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 5 || n > maxPasswordLen {
		return "", protocolErrorf("invalid password message length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if body[len(body)-1] != 0 || bytes.IndexByte(body, 0) != len(body)-1 {
		return "", protocolErrorf("malformed password message")
	}
	return string(body[:len(body)-1]), nil
}
