package pgwire

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// cancelTimeout bounds a cancel whose context has no deadline.
const cancelTimeout = 10 * time.Second

// SendCancel delivers a CancelRequest for key to the server at addr. With
// a TLS config it asks for TLS first, as libpq 17 does, and refuses to
// send the key in the clear if the server declines. It waits for the
// server to close the connection, which it does once the request is
// processed.
func SendCancel(ctx context.Context, addr string, tlsConf *tls.Config, key CancelKey) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s for cancel: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(cancelTimeout)
	}
	conn.SetDeadline(deadline)
	var c net.Conn = conn
	if tlsConf != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:4], 8)
		binary.BigEndian.PutUint32(req[4:8], CodeSSLRequest)
		if _, err := conn.Write(req[:]); err != nil {
			return fmt.Errorf("cancel: SSL request: %w", err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(conn, answer[:]); err != nil {
			return fmt.Errorf("cancel: SSL answer: %w", err)
		}
		if answer[0] != 'S' {
			return fmt.Errorf("cancel: upstream %s refused TLS; not sending the cancel key in plaintext", addr)
		}
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("cancel: TLS handshake: %w", err)
		}
		c = tc
	}
	msg := make([]byte, 12+len(key.Secret))
	binary.BigEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.BigEndian.PutUint32(msg[4:8], CodeCancelRequest)
	binary.BigEndian.PutUint32(msg[8:12], key.PID)
	copy(msg[12:], key.Secret)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("cancel: send request: %w", err)
	}
	// The server closes when done; an error here (reset, close_notify
	// missing) is normal and means the same.
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1024))
	return nil
}
