package proxy

import (
	"errors"
	"io"
	"net"
	"time"
)

// IsTimeout reports whether err is a deadline or timeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CloseWrite half-closes c when it can (TCP FIN, TLS close_notify) and
// reports whether it did.
func CloseWrite(c net.Conn) bool {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite() == nil
	}
	return false
}

// LingerClose is how to close a client after sending it an error: half-close,
// then drain what it still sends for a moment. Closing a socket with unread
// input makes the kernel send a reset, and a reset can destroy the error
// message in flight before the client reads it. The caller still closes c.
func LingerClose(c net.Conn) {
	if !CloseWrite(c) {
		return
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}
