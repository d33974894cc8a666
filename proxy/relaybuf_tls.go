//go:build linux && !386

package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tlsSocket is, for a TLS connection over a plain TCP socket (the
// upstreams, behind their dead-path watch), that socket and the TLS
// connection's buffers (see readTLS); nil for anything else, and when
// this Go's tls.Conn does not have the buffers as expected.
func tlsSocket(src net.Conn) (syscall.RawConn, tlsBuffers) {
	tc, ok := src.(*tls.Conn)
	if !ok {
		return nil, tlsBuffers{}
	}
	under := tc.NetConn()
	if w, ok := under.(*watchedConn); ok {
		under = w.tc // waited on only; every read still goes through the watch
	}
	raw := rawConn(under)
	if raw == nil {
		return nil, tlsBuffers{}
	}
	tb, ok := tlsBuffersOf(tc)
	if !ok {
		return nil, tlsBuffers{}
	}
	return raw, tb
}

// readable is the RawConn.Read callback of readTLS's wait: false parks
// the direction on the poller until the socket is readable, true ends
// the wait. It asks poll(2), without a timeout, rather than peeking:
// the bytes are the TLS connection's to read, and a peek would take a
// pending socket error (a reset, the kernel's own timeout) that its read
// must report. After a wake-up it does not ask again.
func (c *chunks) readable(fd uintptr) bool {
	if c.woke {
		return true
	}
	c.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	if n, errno := sysPoll(c.pfd[:]); n == 0 && errno == 0 {
		c.woke = true
		return false
	}
	return true // bytes, the end, an error (or EINTR): the conn's Read tells
}

// sysPoll is poll(2) with a zero timeout, so it never blocks, made without
// the scheduler's syscall entry (ppoll(2): every Linux architecture has
// it, arm64 has no poll) for the reason rawio_linux.go gives: with
// unix.Poll every wait of a TLS upstream woke sysmon again, which cost a
// 1-client round trip about 20 µs on the 2-vCPU build machine (the bench
// suite's latency row: 1.32-1.34x direct with it, 1.08-1.13x without the
// poll at all).
func sysPoll(fds []unix.PollFd) (int, syscall.Errno) {
	var zero unix.Timespec
	n, _, errno := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	return int(n), errno
}

// pollFd is what readable asks poll(2) with.
type pollFd = unix.PollFd
