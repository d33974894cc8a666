package mysql

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// framer follows MySQL packet framing (a 3-byte length, a sequence id,
// the payload) over a byte stream.
type framer struct {
	hdr  [4]byte
	hdrN int // header bytes of the current packet seen so far
	left int // payload bytes of the current packet still to come
	// done is called with a packet's sequence id when its last byte
	// has passed.
	done func(seq byte)
}

func (f *framer) feed(p []byte) {
	for len(p) > 0 {
		if f.left > 0 {
			n := min(f.left, len(p))
			f.left -= n
			p = p[n:]
			if f.left == 0 {
				f.done(f.hdr[3])
			}
			continue
		}
		if f.hdrN == 0 && len(p) >= len(f.hdr) {
			copy(f.hdr[:], p) // the usual case: a whole header in the chunk
			p = p[len(f.hdr):]
		} else {
			n := copy(f.hdr[f.hdrN:], p)
			f.hdrN += n
			p = p[n:]
			if f.hdrN < len(f.hdr) {
				return
			}
			f.hdrN = 0
		}
		f.left = int(f.hdr[0]) | int(f.hdr[1])<<8 | int(f.hdr[2])<<16
		if f.left == 0 {
			f.done(f.hdr[3])
		}
	}
}

// between says the stream is at a packet boundary.
func (f *framer) between() bool { return f.hdrN == 0 && f.left == 0 }

// farewell lets a session the upstream breaks off end with an ERR packet
// the client shows, but only where one is an answer the client waits for:
// after a command of the client's, before the upstream has said anything
// in reply (a command sent just after the break included, see Message). Inside a reply the client could not tell the ERR from the
// reply's own packets, or the reply was complete and an ERR would answer
// a command not yet sent; then the client sees the closed connection
// ("Lost connection to server"), as from a server that died. It implements
// proxy.Farewell.
type farewell struct {
	mu       sync.Mutex
	client   framer
	upstream framer
	waiting  bool // a command is complete and nothing has come back yet
	seq      byte // the sequence id of the command's last packet
	// asked has a token when a command of the client's has just become
	// complete; nextWait is how long an idle session's farewell waits for
	// the client's next command (see Message).
	asked    chan struct{}
	nextWait time.Duration
}

// nextCommandWait is how long Message waits for the next command of a
// session that was idle when the upstream broke off: a client that
// connects and queries at once (a connection per request, a pool opening
// a connection for a query) sends it within milliseconds, and the
// client's connection is held open with a dead upstream only that long.
const nextCommandWait = time.Second

func newFarewell() *farewell {
	f := &farewell{asked: make(chan struct{}, 1), nextWait: nextCommandWait}
	f.client.done = func(seq byte) {
		f.waiting, f.seq = true, seq
		select {
		case f.asked <- struct{}{}:
		default:
		}
	}
	f.upstream.done = func(byte) {}
	return f
}

func (f *farewell) FromClient(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.client.feed(p)
}

func (f *farewell) FromUpstream(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) > 0 {
		f.waiting = false
	}
	f.upstream.feed(p)
}

// Message answers the command waiting when the upstream broke off. A
// session idle then (between commands: nothing owed either way) is held
// up to nextWait for the client's next command, which the ERR answers:
// sent before it, the ERR could reach the client in the same read as the
// reply before it (go-sql-driver then fails with "busy buffer"), and a
// reply that is still coming at a packet boundary cannot be told from a
// finished one, while a client never sends its next command in the
// middle of a reply. It runs on the relay's down goroutine, after its
// last FromUpstream; the up goroutine still reads the client meanwhile.
func (f *farewell) Message(err error) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.waiting && f.upstream.between() && f.client.between() {
		select {
		case <-f.asked: // an answered command's token
		default:
		}
		f.mu.Unlock()
		t := time.NewTimer(f.nextWait)
		select {
		case <-f.asked:
		case <-t.C:
		}
		t.Stop()
		f.mu.Lock()
	}
	if !f.waiting || !f.upstream.between() {
		return nil
	}
	var b bytes.Buffer
	lost := proxy.LostUpstream(err)
	lost.Code.Errno = mywire.ErUpstreamConnect
	if errors.Is(err, proxy.ErrDemoted) {
		// 1053 (08S01), as a server that shuts down says: pools and
		// drivers take it for "reconnect".
		lost = proxy.DemotedFailure()
		lost.Code.Errno = mywire.ErServerShutdown
	}
	if writeFailure(&b, lost, position{seq: f.seq + 1, greeted: true}) != nil {
		return nil
	}
	return b.Bytes()
}
