//go:build !linux || 386

package proxy

import "net"

// rawSock: off Linux (and on linux/386) sockets are read and written
// through net.Conn itself (see rawio_linux.go).
type rawSock struct{ net.Conn }

// newRawSock is always nil here: callers use the connection itself.
func newRawSock(net.Conn) *rawSock { return nil }
