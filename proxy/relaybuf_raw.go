//go:build linux && !386

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawConn is the raw socket of a plain TCP or unix connection, which the
// relay can wait on without a buffer; nil for anything else. (Linux only,
// and not linux/386, which has no recvfrom system call of its own.)
func rawConn(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// peek looks at fd without reading (MSG_PEEK, MSG_DONTWAIT): errno
// EAGAIN when nothing is there, n 0 at the end of the stream, else the
// socket's error or n 1 for bytes waiting. A raw syscall with no source
// address: syscall.Recvfrom's address buffer would cost an allocation per
// call. It never blocks, so it skips the scheduler's syscall entry, as
// sysRead does (rawio_linux.go).
func peek(fd uintptr, one []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&one[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n), errno
}

// try is the RawConn.Read callback: false parks the direction on the
// poller until the socket is readable, true ends the read. The buffer is
// given back before every false, so it is never held while the direction
// waits; it is taken again only once the socket has something.
func (c *chunks) try(fd uintptr) bool {
	if c.big == nil {
		// Without a buffer (the session's first read) it cannot know:
		// the poller's readiness was reset when the read began, and bytes
		// that came before it would never wake it. So look without taking
		// anything. After a wake-up, read at once (a spurious wake-up
		// then takes the buffer for one read that finds nothing).
		if !c.woke {
			// A socket's error or end is taken here, not read again:
			// MSG_PEEK still clears a pending error (a reset), and a
			// read after it would say EOF instead.
			switch n, errno := peek(fd, c.peek[:]); {
			case errno == syscall.EAGAIN:
				c.woke = true
				return false
			case errno == syscall.EINTR:
				// Not known: read, which says for sure.
			case errno != 0:
				c.err = c.readErr(errno)
				return true
			case n == 0:
				c.err = io.EOF
				return true
			}
		}
		c.big = bufPool.Get().(*[]byte)
	}
	for {
		n, errno := sysRead(fd, *c.big) // see rawio_linux.go
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			bufPool.Put(c.big)
			c.big, c.woke = nil, true
			return false
		case errno != 0:
			c.err = c.readErr(errno)
		case n == 0:
			c.err = io.EOF
		default:
			c.n = n
		}
		return true
	}
}

// readErr is a failed read as net.Conn.Read says it.
func (c *chunks) readErr(err error) error {
	return &net.OpError{Op: "read", Net: c.src.LocalAddr().Network(), Source: c.src.LocalAddr(),
		Addr: c.src.RemoteAddr(), Err: os.NewSyscallError("read", err)}
}
