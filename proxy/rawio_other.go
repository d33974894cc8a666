//go:build !linux || 386

package proxy

import (
	"errors"
	"io"
	"net"
)

// rawSock: off Linux (and on linux/386) sockets are read and written
// through net.Conn itself (see rawio_linux.go).
type rawSock struct{ net.Conn }

// newRawSock is always nil here: callers use the connection itself.
func newRawSock(net.Conn) *rawSock { return nil }

// ClientWriter is c itself here (see rawio_linux.go).
func ClientWriter(c net.Conn) io.Writer { return c }

// CloseWrite is never called: there is no rawSock here.
func (s *rawSock) CloseWrite() error { return errors.ErrUnsupported }
