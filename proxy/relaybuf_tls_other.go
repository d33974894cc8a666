//go:build !linux || 386

package proxy

import (
	"net"
	"syscall"
)

// tlsSocket: off Linux (and on linux/386) a TLS source is read with its
// wait buffer (see chunks).
func tlsSocket(net.Conn) (syscall.RawConn, tlsBuffers) { return nil, tlsBuffers{} }

// readable is never called: tlsSocket gives no socket to wait on.
func (c *chunks) readable(uintptr) bool { return true }

// pollFd is unused off Linux.
type pollFd struct{}
