//go:build linux && !386

package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
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
// the wait. It looks without reading (the bytes are the TLS
// connection's to read), and after a wake-up does not look again.
func (c *chunks) readable(fd uintptr) bool {
	if c.woke {
		return true
	}
	if _, errno := peek(fd, c.peek[:]); errno == syscall.EAGAIN {
		c.woke = true
		return false
	}
	return true // bytes, the end, or an error: the conn's Read tells
}
