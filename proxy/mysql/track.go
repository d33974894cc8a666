package mysql

import (
	"sync"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Status flags an OK or EOF carries.
const (
	statusInTrans     = mywire.ServerStatusInTrans
	statusAutocommit  = 0x0002
	statusMoreResults = 0x0008
)

// Commands the tracker knows the answers of.
const (
	comQuit             = 0x01
	comInitDB           = 0x02
	comQuery            = 0x03
	comStatistics       = 0x09
	comProcessKill      = 0x0c
	comPing             = 0x0e
	comStmtPrepare      = 0x16
	comStmtExecute      = 0x17
	comStmtSendLongData = 0x18
	comStmtClose        = 0x19
	comStmtReset        = 0x1a
	comResetConnection  = 0x1f
)

// mariadbCacheMetadata is MariaDB's MARIADB_CLIENT_CACHE_METADATA among
// the extended capabilities (bit 36 of 64): with it, as with MySQL's
// CLIENT_OPTIONAL_RESULTSET_METADATA, a result set's column count is
// followed by a byte that says whether its column definitions follow.
const mariadbCacheMetadata = 1 << (36 - 32)

// tracker follows one client's use of an upstream session, packet by
// packet each way, to say whether the client left it in a state the next
// client may inherit after COM_RESET_CONNECTION: it quit with COM_QUIT as
// the last bytes it sent, every command it sent had its whole answer
// (result sets followed column by column and row by row, with or without
// CLIENT_DEPRECATE_EOF, multi-results by SERVER_MORE_RESULTS_EXISTS,
// prepared statements' definitions, LOAD DATA LOCAL INFILE's contents),
// the last status the server gave said no transaction is open, and both
// streams stop at a packet boundary. Any command it does not know (a
// cursor fetch, COM_CHANGE_USER, COM_SET_OPTION, a replication command)
// or anything out of step makes the session unfit: it is closed, as
// without reuse. It implements proxy.Tracker.
type tracker struct {
	mu           sync.Mutex
	deprecateEOF bool
	metaFlag     bool // a column count is followed by "definitions follow"
	client       packets
	server       packets
	queue        []answer // commands sent whose answer has not ended, oldest first
	status       uint16   // the last status the server gave
	infile       bool     // the server asked for a local file: the client's packets are its contents
	quit         bool     // the clean COM_QUIT was seen (and held back)
	poisoned     bool     // the session must not be reused
}

// answer is what the server still owes for one command.
type answer struct {
	kind  byte // the command
	phase phase
	n     int // definitions still to come in this phase
	cols  int // a prepared statement's columns, after its parameters
}

type phase uint8

const (
	phaseFirst     phase = iota // the answer's first packet
	phaseDefs                   // column definitions of a result set
	phaseDefsEOF                // the EOF after them (without CLIENT_DEPRECATE_EOF)
	phaseRows                   // rows, until an EOF/OK or an ERR
	phaseParams                 // a prepared statement's parameter definitions
	phaseParamsEOF              // the EOF after them
	phaseCols                   // a prepared statement's column definitions
	phaseColsEOF                // the EOF after them
	phaseInfile                 // the client is sending a local file
)

// newTracker follows a session framed with caps and ext (see
// mywire.SessionCaps) whose last OK had status.
func newTracker(caps, ext uint32, status uint16) *tracker {
	return &tracker{deprecateEOF: caps&mywire.CapDeprecateEOF != 0, status: status,
		metaFlag: caps&mywire.CapOptionalMetadata != 0 || ext&mariadbCacheMetadata != 0}
}

// FromClient hears a chunk of the client's before it goes upstream and
// says how much of it to send: all of it, except a clean COM_QUIT at its
// end, which is held back (quit) so that the server keeps the session.
func (t *tracker) FromClient(p []byte) (forward int, quit bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.quit || t.poisoned {
		t.poisoned = true // bytes after the COM_QUIT: not a clean leave
		return len(p), false
	}
	forward = len(p)
	t.client.feed(p, func(seq byte, head []byte, size, start, end int) {
		if t.poisoned {
			return
		}
		if t.infile {
			if size == 0 { // the file's end: the server's answer follows
				t.infile = false
				if len(t.queue) == 0 {
					t.poisoned = true
					return
				}
				t.queue[0].phase = phaseFirst
			}
			return
		}
		if seq != 0 || len(head) == 0 {
			t.poisoned = true // not a command's start
			return
		}
		switch head[0] {
		case comQuit:
			if start < 0 || end != len(p) || size != 1 || !t.idleLocked() {
				t.poisoned = true
				return
			}
			t.quit, forward = true, start
		case comQuery, comStmtPrepare, comInitDB, comPing, comProcessKill, comStmtReset, comResetConnection, comStatistics:
			t.queue = append(t.queue, answer{kind: head[0]})
		case comStmtExecute:
			if len(head) < 6 || head[5] != 0 {
				t.poisoned = true // a cursor: its rows come by COM_STMT_FETCH
				return
			}
			t.queue = append(t.queue, answer{kind: head[0]})
		case comStmtSendLongData, comStmtClose:
			// no answer
		default:
			t.poisoned = true
		}
	})
	return forward, t.quit
}

// FromUpstream hears a chunk of the server's.
func (t *tracker) FromUpstream(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.server.feed(p, func(_ byte, head []byte, size, _, _ int) {
		if t.poisoned {
			return
		}
		if len(t.queue) == 0 || t.infile {
			t.poisoned = true // an answer to nothing sent: out of step
			return
		}
		if t.step(&t.queue[0], head, size) {
			t.queue = t.queue[1:]
		}
	})
}

// step follows one packet of the answer a and says whether the answer
// has ended.
func (t *tracker) step(a *answer, head []byte, size int) (done bool) {
	first := byte(0)
	if len(head) > 0 {
		first = head[0]
	}
	isErr := size > 0 && first == 0xff
	isEOF := size > 0 && first == 0xfe && (size < 9 || t.deprecateEOF && size < maxPayload)
	switch a.phase {
	case phaseFirst:
		switch {
		case isErr:
			t.err()
			return true
		case a.kind == comStatistics:
			return true // a string, whatever it starts with
		case size > 0 && first == 0x00:
			if a.kind == comStmtPrepare {
				return t.prepared(a, head)
			}
			return t.ended(head, false)
		case a.kind == comQuery && size > 0 && first == 0xfb:
			t.infile = true
			a.phase = phaseInfile
			return false
		case a.kind == comQuery || a.kind == comStmtExecute:
			n, ok := lenenc(head)
			if !ok || n == 0 {
				t.poisoned = true
				return true
			}
			a.phase, a.n = phaseDefs, n
			if ls := lenencSize(head, 0); t.metaFlag && size > ls && len(head) > ls && head[ls] == 0 {
				// No definitions: the client has them from before.
				a.phase = t.afterDefs()
			}
			return false
		}
		t.poisoned = true
		return true
	case phaseDefs:
		a.n--
		if a.n == 0 {
			a.phase = t.afterDefs()
		}
		return false
	case phaseDefsEOF:
		if !isEOF {
			t.poisoned = true
			return true
		}
		a.phase = phaseRows
		return false
	case phaseRows:
		switch {
		case isErr:
			t.err()
			return true
		case isEOF:
			return t.ended(head, !t.deprecateEOF)
		}
		return false // a row
	case phaseParams, phaseCols:
		a.n--
		if a.n > 0 {
			return false
		}
		if !t.deprecateEOF {
			a.phase++ // to its EOF
			return false
		}
		return t.nextDefs(a)
	case phaseParamsEOF, phaseColsEOF:
		if !isEOF {
			t.poisoned = true
			return true
		}
		return t.nextDefs(a)
	}
	t.poisoned = true // phaseInfile: the server speaks while the client sends a file
	return true
}

// afterDefs is what follows a result set's column definitions: their
// EOF, or without one the rows.
func (t *tracker) afterDefs() phase {
	if t.deprecateEOF {
		return phaseRows
	}
	return phaseDefsEOF
}

// prepared reads COM_STMT_PREPARE's OK: the statement id (4 bytes), its
// columns and parameters (2 each), then their definitions follow.
func (t *tracker) prepared(a *answer, head []byte) bool {
	if len(head) < 9 {
		t.poisoned = true
		return true
	}
	a.cols = int(head[5]) | int(head[6])<<8
	params := int(head[7]) | int(head[8])<<8
	a.phase, a.n = phaseParams, params
	if params == 0 {
		a.phase = phaseParamsEOF // as if its parameters' EOF had come
		return t.nextDefs(a)
	}
	return false
}

// nextDefs moves a prepared statement's answer from its parameters to its
// columns, or ends it.
func (t *tracker) nextDefs(a *answer) bool {
	if a.phase <= phaseParamsEOF && a.cols > 0 {
		a.phase, a.n = phaseCols, a.cols
		return false
	}
	return true
}

// ended reads the status of an OK (or, eof, a classic EOF) that ends a
// result; a following result keeps the answer open.
func (t *tracker) ended(head []byte, eof bool) bool {
	var status uint16
	var ok bool
	if eof {
		ok = len(head) >= 5
		if ok {
			status = uint16(head[3]) | uint16(head[4])<<8
		}
	} else {
		status, ok = okStatus(head)
	}
	if !ok {
		t.poisoned = true
		return true
	}
	t.status = status
	if status&statusMoreResults != 0 {
		q := &t.queue[0]
		q.phase, q.n = phaseFirst, 0
		return false
	}
	return true
}

// err follows an ERR, which carries no status: with autocommit on and no
// transaction open before it, none is open after it (a statement that
// fails rolls itself back); otherwise the state is unknown, taken as a
// transaction.
func (t *tracker) err() {
	if t.status&statusAutocommit == 0 || t.status&statusInTrans != 0 {
		t.status |= statusInTrans
	}
}

// Clean says whether the client left cleanly and the session is fit to be
// reset and reused.
func (t *tracker) Clean() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.quit && t.idleLocked()
}

func (t *tracker) idleLocked() bool {
	return !t.poisoned && len(t.queue) == 0 && !t.infile && t.status&statusInTrans == 0 &&
		t.client.between() && t.server.between()
}

// okStatus is the status of an OK packet's first bytes: its header, two
// length-encoded integers, then the status.
func okStatus(head []byte) (uint16, bool) {
	i := 1
	for range 2 {
		n := lenencSize(head, i)
		if n == 0 || i+n > len(head) {
			return 0, false
		}
		i += n
	}
	if i+2 > len(head) {
		return 0, false
	}
	return uint16(head[i]) | uint16(head[i+1])<<8, true
}

// lenencSize is the size of the length-encoded integer at head[i] (0: not
// one).
func lenencSize(head []byte, i int) int {
	if i >= len(head) {
		return 0
	}
	switch b := head[i]; {
	case b < 0xfb:
		return 1
	case b == 0xfc:
		return 3
	case b == 0xfd:
		return 4
	case b == 0xfe:
		return 9
	}
	return 0
}

// lenenc is the length-encoded integer head starts with, when it fits an
// int and the packet holds it.
func lenenc(head []byte) (int, bool) {
	n := lenencSize(head, 0)
	if n == 0 || n > len(head) || n == 9 {
		return 0, false
	}
	if n == 1 {
		return int(head[0]), true
	}
	v := 0
	for j := n - 1; j >= 1; j-- {
		v = v<<8 | int(head[j])
	}
	return v, true
}
