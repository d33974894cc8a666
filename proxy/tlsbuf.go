package proxy

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// tlsBuffers are a tls.Conn's read-side buffers. crypto/tls gives no way
// to ask whether a Conn holds bytes its socket no longer shows, nor to
// let go of a buffer it grew once: the records it read and has not
// decrypted (rawInput, grown to the largest record or handshake flight it
// ever read, and kept), the decrypted bytes not yet Read (input, in
// rawInput's memory) and handshake messages not yet handled (hand). Both
// are what an idle session over a TLS upstream holds (issue 15): a wait
// buffer, because waiting on the socket could miss decrypted bytes, and up
// to 16 KiB of rawInput after a large result.
//
// So the relay reaches them through the field layout of this Go's
// tls.Conn, found by reflection at start: each field must exist with its
// type, or tlsBuffersOf says no and the relay reads the TLS side as before
// (with its wait buffer). TestTLSBuffersFound fails when a Go release
// changes the layout, so the fallback is noticed. They are read and
// emptied only between two Reads, on the one goroutine that Reads: every
// use of them in crypto/tls is inside Read (and the handshake, which is
// over before the relay starts).
type tlsBuffers struct {
	rawInput *bytes.Buffer
	input    *bytes.Reader
	hand     *bytes.Buffer
}

// tlsLayout holds the fields' offsets in tls.Conn; ok is false when one
// of them is missing or changed its type.
var tlsLayout = func() (l struct {
	rawInput, input, hand uintptr
	ok                    bool
}) {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type != want {
			return 0, false
		}
		return f.Offset, true
	}
	var ok1, ok2, ok3 bool
	l.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	l.input, ok2 = field("input", reflect.TypeFor[bytes.Reader]())
	l.hand, ok3 = field("hand", reflect.TypeFor[bytes.Buffer]())
	l.ok = ok1 && ok2 && ok3
	return l
}()

// tlsBuffersOf returns c's read buffers, or false when this Go's tls.Conn
// does not have them as expected, or c's handshake is not complete.
func tlsBuffersOf(c *tls.Conn) (tlsBuffers, bool) {
	if !tlsLayout.ok || !c.ConnectionState().HandshakeComplete {
		return tlsBuffers{}, false
	}
	p := unsafe.Pointer(c)
	return tlsBuffers{
		rawInput: (*bytes.Buffer)(unsafe.Add(p, tlsLayout.rawInput)),
		input:    (*bytes.Reader)(unsafe.Add(p, tlsLayout.input)),
		hand:     (*bytes.Buffer)(unsafe.Add(p, tlsLayout.hand)),
	}, true
}

// pending says whether the conn holds bytes to Read, or to decrypt,
// that its socket no longer shows.
func (b tlsBuffers) pending() bool {
	return b.input.Len() > 0 || b.rawInput.Len() > 0 || b.hand.Len() > 0
}

// drop lets go of the memory of the buffers, which must be empty (see
// pending): the next Read grows them again as it needs.
func (b tlsBuffers) drop() {
	*b.input = bytes.Reader{}
	if b.rawInput.Cap() > 0 {
		*b.rawInput = bytes.Buffer{}
	}
	if b.hand.Cap() > 0 {
		*b.hand = bytes.Buffer{}
	}
}

// tlsKeep is the most record buffer (rawInput) a TLS source keeps while
// it waits: enough for the answers of a point query, so that a
// request-and-answer session does not allocate one per answer; a larger
// one (grown by a large result) is let go of before the wait.
const tlsKeep = 4 << 10

// readTLS reads a TLS source whose socket the relay can wait on. While the
// conn holds nothing to Read (tlsBuffers.pending), it gives back its
// buffer and lets go of the conn's own grown ones, then waits until the
// socket is readable holding none (readable); then it Reads the conn with
// a pooled buffer. After a read that filled the buffer (a large result
// streaming) it reads on at once, as a plain read would.
//
// On the first wait every buffer the handshake grew is let go of; later
// only a record buffer larger than tlsKeep.
func (c *chunks) readTLS() ([]byte, error) {
	if !c.full && !c.tb.pending() {
		if c.big != nil {
			bufPool.Put(c.big)
			c.big = nil
		}
		if !c.settled || c.tb.rawInput.Cap() > tlsKeep {
			c.tb.drop()
			c.settled = true
		}
		c.woke = false
		// An error here (closed, past a deadline, a dead path) is left to
		// the conn's Read below, which fails at once and says it as the
		// relay expects.
		c.raw.Read(c.tryFn)
	}
	if c.big == nil {
		c.big = bufPool.Get().(*[]byte)
	}
	n, err := c.src.Read(*c.big)
	c.full = n == len(*c.big)
	return (*c.big)[:max(n, 0)], err
}
