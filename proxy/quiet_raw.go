//go:build linux && !386

package proxy

import (
	"net"
	"syscall"
)

// quietSocket peeks at c's socket without waiting (see peek).
func quietSocket(c net.Conn) (quiet, known bool) {
	rc := rawConn(c)
	if rc == nil {
		return false, false
	}
	var one [1]byte
	var errno syscall.Errno
	if err := rc.Read(func(fd uintptr) bool {
		_, errno = peek(fd, one[:])
		return true
	}); err != nil {
		return false, false // closed, or a deadline passed
	}
	switch {
	case errno == syscall.EAGAIN:
		return true, true
	case errno == syscall.EINTR:
		return false, false
	default: // bytes waiting, the end of the stream, or the socket's error
		return false, true
	}
}
