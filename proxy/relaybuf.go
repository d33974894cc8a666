package proxy

import (
	"net"
	"sync"
	"syscall"
)

// relayBufSize is one TLS record's worth: a read from a tls.Conn returns at
// most one record, so a larger buffer would sit mostly unused.
const relayBufSize = 16 << 10

// waitBufSize is the buffer a direction waits with when its source cannot
// be waited on without one (a tls.Conn may hold decrypted bytes its socket
// no longer shows): small, since an idle session holds it the whole time.
// A read that fills it has a pooled relayBufSize buffer read the rest.
const waitBufSize = 2 << 10

// bufPool holds relay buffers. io.Copy would allocate its own 32 KB buffer
// per direction (and io.CopyBuffer ignores ours when the source has WriteTo,
// as a TCPConn does), so the relay runs its own copy loop.
var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// waitPool holds the waitBufSize buffers.
var waitPool = sync.Pool{New: func() any { b := make([]byte, waitBufSize); return &b }}

// chunks reads one direction's source a chunk at a time, holding a pooled
// buffer only while bytes are there to copy, so that an idle session holds
// none (issue 15: the two 16 KiB buffers were most of an idle session's
// memory).
//
// A plain TCP or unix socket (raw set) is read from inside RawConn.Read:
// the buffer is taken once the socket has bytes and given back as soon as
// a read finds none, before the direction parks on the poller; between
// chunks of a stream it is kept, so a busy socket costs no more system
// calls than a plain Read (one read per chunk, and one that finds nothing
// before each wait, as a blocking Read makes too). Any other
// source (a tls.Conn, whose decrypted but unread bytes its socket does not
// show) is read with a small buffer held while it waits; when a read fills
// that, the next reads use a pooled one until a read comes back short.
//
// A chunk stays valid until the next read or release. One goroutine uses
// a chunks.
type chunks struct {
	src net.Conn
	raw syscall.RawConn // nil: read src itself

	big  *[]byte // the pooled buffer held, or nil
	wait *[]byte // the small buffer of a source that is not raw
	full bool    // not raw: the last chunk filled its buffer, more is likely there

	// What readRaw's callback found.
	n     int
	err   error
	woke  bool               // the poller said readable: skip the peek
	tryFn func(uintptr) bool // c.try, bound once (not per read)
	peek  [1]byte

	// A TLS source over a socket the relay can wait on (raw is that
	// socket): its buffers, see readTLS. Zero for any other source.
	tb      tlsBuffers
	settled bool // readTLS let go of the handshake's buffers
	pfd     [1]pollFd
}

func newChunks(src net.Conn) *chunks {
	c := &chunks{src: src, raw: rawConn(src)}
	if c.raw == nil {
		c.raw, c.tb = tlsSocket(src)
	}
	if c.raw != nil {
		c.tryFn = c.try
		if c.tb.rawInput != nil {
			c.tryFn = c.readable
		}
	} else {
		c.wait = waitPool.Get().(*[]byte)
	}
	return c
}

// read returns the next chunk of the source, or why there is none (as
// the source's own Read would say it: io.EOF, net.ErrClosed, a timeout).
func (c *chunks) read() ([]byte, error) {
	if c.tb.rawInput != nil {
		return c.readTLS()
	}
	if c.raw != nil {
		return c.readRaw()
	}
	if !c.full && c.big != nil {
		bufPool.Put(c.big)
		c.big = nil
	}
	buf := *c.wait
	if c.full {
		if c.big == nil {
			c.big = bufPool.Get().(*[]byte)
		}
		buf = *c.big
	}
	n, err := c.src.Read(buf)
	c.full = n == len(buf)
	return buf[:max(n, 0)], err
}

// readRaw reads a socket, taking the buffer only once it has something
// and keeping it until a read finds nothing more (see try).
func (c *chunks) readRaw() ([]byte, error) {
	c.n, c.err, c.woke = 0, nil, false
	if err := c.raw.Read(c.tryFn); err != nil {
		return nil, err // closed or past its deadline while waiting
	}
	if c.err != nil || c.big == nil {
		return nil, c.err
	}
	return (*c.big)[:c.n], nil
}

// release gives back every buffer; the chunks is not used again.
func (c *chunks) release() {
	if c.big != nil {
		bufPool.Put(c.big)
		c.big = nil
	}
	if c.wait != nil {
		waitPool.Put(c.wait)
		c.wait = nil
	}
}
