package postgres

import (
	"encoding/binary"
	"sync"
)

// tracker follows one client's use of an upstream session, message by
// message each way, to say whether the client left it in a state the next
// client may inherit after DISCARD ALL: it quit with Terminate ('X') as
// the last thing it sent, every sync point it sent (Query, Sync,
// FunctionCall) had its ReadyForQuery, no extended-protocol message was
// left without a Sync, the last ReadyForQuery said 'I' (no transaction,
// not a failed one), and the server's bytes stop at a message boundary.
// Anything else, or anything it does not know, makes the session
// unfit for reuse: it is closed, as without reuse. It implements
// proxy.Tracker.
type tracker struct {
	mu       sync.Mutex
	client   framer
	server   framer
	pending  int  // sync points sent whose ReadyForQuery has not come
	unsynced bool // Parse/Bind/Execute/Describe/Close since the last Sync
	lastZ    byte // the last ReadyForQuery's status
	quit     bool // the clean Terminate was seen (and held back)
	poisoned bool // the session must not be reused
}

// newTracker follows a session whose login ended with ReadyForQuery
// status z.
func newTracker(z byte) *tracker { return &tracker{lastZ: z} }

// FromClient hears a chunk of the client's before it goes upstream and
// says how much of it to send: all of it, except a clean Terminate at its
// end, which is held back (quit) so that the server keeps the session.
func (t *tracker) FromClient(p []byte) (forward int, quit bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.quit || t.poisoned {
		t.poisoned = true // bytes after the Terminate: not a clean leave
		return len(p), false
	}
	forward = len(p)
	t.client.feed(p, func(typ, _ byte, start, end int) {
		switch typ {
		case 'Q', 'F':
			t.pending++
		case 'S':
			t.pending++
			t.unsynced = false
		case 'P', 'B', 'E', 'D', 'C':
			t.unsynced = true
		case 'H':
		case 'd', 'c', 'f': // COPY FROM STDIN's data, done, fail: only inside a query
			if t.pending == 0 {
				t.poisoned = true
			}
		case 'X':
			if start < 0 || end != len(p) || !t.idleLocked() {
				t.poisoned = true
				return
			}
			t.quit, forward = true, start
		default:
			t.poisoned = true
		}
	})
	if t.client.broken {
		t.poisoned = true
	}
	return forward, t.quit
}

// FromUpstream hears a chunk of the server's.
func (t *tracker) FromUpstream(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.server.feed(p, func(typ, first byte, _, _ int) {
		if typ != 'Z' {
			return
		}
		if t.pending == 0 {
			t.poisoned = true // a ReadyForQuery for nothing sent: out of step
			return
		}
		t.pending--
		t.lastZ = first
	})
	if t.server.broken {
		t.poisoned = true
	}
}

// Clean says whether the client left cleanly and the session is fit to be
// reset and reused.
func (t *tracker) Clean() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.quit && !t.poisoned && t.idleLocked()
}

func (t *tracker) idleLocked() bool {
	return !t.poisoned && t.pending == 0 && !t.unsynced && t.lastZ == 'I' && t.client.atBoundary() && t.server.atBoundary()
}

// framer follows PostgreSQL's message framing (a type byte, then a 4-byte
// length that counts itself) across chunks, and calls back at the end of
// each message with its type, its first body byte (ReadyForQuery's
// status) and where it started and ended in the chunk that ended it
// (start -1: in an earlier chunk).
type framer struct {
	hdr    [5]byte
	hdrN   int   // header bytes of the current message seen so far
	left   int64 // body bytes of the current message still to come
	typ    byte
	first  byte
	body0  bool // the current message's first body byte is still to come
	start  int  // where the current message started in this chunk (-1: before)
	broken bool // a length no peer sends
}

func (f *framer) atBoundary() bool { return !f.broken && f.hdrN == 0 && f.left == 0 }

func (f *framer) feed(p []byte, done func(typ, first byte, start, end int)) {
	i := 0
	for i < len(p) && !f.broken {
		if f.left > 0 {
			if f.body0 {
				f.first, f.body0 = p[i], false
			}
			n := int(min(f.left, int64(len(p)-i)))
			f.left -= int64(n)
			i += n
			if f.left == 0 {
				done(f.typ, f.first, f.start, i)
			}
			continue
		}
		if f.hdrN == 0 {
			f.start = i
		}
		n := copy(f.hdr[f.hdrN:], p[i:])
		f.hdrN += n
		i += n
		if f.hdrN < len(f.hdr) {
			f.start = -1 // the rest comes in the next chunk
			return
		}
		f.hdrN = 0
		size := int64(binary.BigEndian.Uint32(f.hdr[1:]))
		if size < 4 {
			f.broken = true
			return
		}
		f.typ, f.left, f.first, f.body0 = f.hdr[0], size-4, 0, true
		if f.left == 0 {
			done(f.typ, 0, f.start, i)
		}
	}
	f.start = -1
}
