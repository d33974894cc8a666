package mysql

import (
	"bytes"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

func tpkt(seq byte, payload ...byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

func tcat(ps ...[]byte) []byte { return bytes.Join(ps, nil) }

// ok is an OK packet with status.
func ok(seq byte, status uint16) []byte {
	return tpkt(seq, 0x00, 0, 0, byte(status), byte(status>>8), 0, 0)
}

// eofOK is CLIENT_DEPRECATE_EOF's terminating OK (header 0xfe).
func eofOK(seq byte, status uint16) []byte {
	return tpkt(seq, 0xfe, 0, 0, byte(status), byte(status>>8), 0, 0)
}

func eof(seq byte, status uint16) []byte {
	return tpkt(seq, 0xfe, 0, 0, byte(status), byte(status>>8))
}

var (
	quitPkt = tpkt(0, comQuit)
	errPkt  = tpkt(1, 0xff, 0x28, 0x04, '#', 'H', 'Y', '0', '0', '0', 'x')
	coldef  = tpkt(2, 3, 'd', 'e', 'f')
)

func query(s string) []byte { return tpkt(0, append([]byte{comQuery}, s...)...) }

// run feeds the exchange to a tracker and has the client quit at the end.
func run(t *testing.T, tr *tracker, steps ...[]byte) (quit, clean bool) {
	t.Helper()
	for i, s := range steps {
		if i%2 == 0 {
			if n, q := tr.FromClient(s); n != len(s) || q {
				t.Fatalf("step %d: a command was held back (%d of %d)", i, n, len(s))
			}
		} else {
			tr.FromUpstream(s)
		}
	}
	n, q := tr.FromClient(quitPkt)
	if q && n != 0 {
		t.Fatalf("a clean quit was forwarded (%d bytes)", n)
	}
	return q, tr.Clean()
}

func TestTrackerVerdicts(t *testing.T) {
	const ac = statusAutocommit
	textRows := tcat(tpkt(1, 1), coldef, eof(3, ac), tpkt(4, 0x00), tpkt(5, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0, 'x'), tpkt(6, 0xfb), eof(7, ac))
	for _, c := range []struct {
		name         string
		deprecateEOF bool
		steps        [][]byte
		clean        bool
	}{
		{"nothing", false, nil, true},
		{"ok", false, [][]byte{query("set @a=1"), ok(1, ac)}, true},
		{"rows starting 0x00 0xfe 0xfb", false, [][]byte{query("select"), textRows}, true},
		{"rows split in 1-byte chunks", false, append([][]byte{query("select")}, split(textRows)...), true},
		{"in a transaction", false, [][]byte{query("begin"), ok(1, ac|statusInTrans)}, false},
		{"transaction ended", false, [][]byte{query("begin"), ok(1, ac|statusInTrans), query("commit"), ok(1, ac)}, true},
		{"error with autocommit", false, [][]byte{query("bad"), errPkt}, true},
		{"error inside a transaction", false, [][]byte{query("begin"), ok(1, ac|statusInTrans), query("bad"), errPkt}, false},
		{"error with autocommit off", false, [][]byte{query("set autocommit=0"), ok(1, 0), query("bad"), errPkt}, false},
		{"autocommit off, no transaction", false, [][]byte{query("set autocommit=0"), ok(1, 0)}, true},
		{"answer outstanding", false, [][]byte{query("select sleep(9)")}, false},
		{"mid result set", false, [][]byte{query("select"), tcat(tpkt(1, 1), coldef, eof(3, ac), tpkt(4, 0x01, 'x'))}, false},
		{"mid packet", false, [][]byte{query("select"), tpkt(1, 1)[:3]}, false},
		{"multi results", false, [][]byte{query("a;b"), tcat(ok(1, ac|statusMoreResults), tpkt(2, 1), coldef, eof(4, ac), eof(5, ac|statusMoreResults), ok(6, ac))}, true},
		{"multi results cut", false, [][]byte{query("a;b"), ok(1, ac|statusMoreResults)}, false},
		{"deprecate eof rows", true, [][]byte{query("select"), tcat(tpkt(1, 1), coldef, tpkt(3, 0x00), tpkt(4, 0xfb), eofOK(5, ac))}, true},
		{"deprecate eof in transaction", true, [][]byte{query("select"), tcat(tpkt(1, 1), coldef, eofOK(4, ac|statusInTrans))}, false},
		{"error mid rows", false, [][]byte{query("select"), tcat(tpkt(1, 1), coldef, eof(3, ac), tpkt(4, 0x00), errPkt)}, true},
		{"prepare and execute", false, [][]byte{
			tpkt(0, comStmtPrepare, 's'), tcat(tpkt(1, 0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0), coldef, coldef, eof(4, ac), coldef, eof(6, ac)),
			tcat(tpkt(0, comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0), tpkt(0, comStmtClose, 1, 0, 0, 0)), tcat(tpkt(1, 1), coldef, eof(3, ac), tpkt(4, 0x00, 0x00, 0xfe), eof(5, ac)),
		}, true},
		{"prepare without parameters, deprecate eof", true, [][]byte{
			tpkt(0, comStmtPrepare, 's'), tcat(tpkt(1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0), coldef),
			tpkt(0, comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0), tcat(tpkt(1, 1), coldef, tpkt(3, 0x00, 0x00, 1), eofOK(4, ac)),
		}, true},
		{"execute with a cursor", false, [][]byte{tpkt(0, comStmtExecute, 1, 0, 0, 0, 1, 1, 0, 0, 0)}, false},
		{"local infile", false, [][]byte{query("load"), tpkt(1, 0xfb, 'f'), tcat(tpkt(2, 'a', 'b'), tpkt(3)), ok(4, ac)}, true},
		{"local infile unfinished", false, [][]byte{query("load"), tpkt(1, 0xfb, 'f'), tpkt(2, 'a', 'b')}, false},
		{"unknown command", false, [][]byte{tpkt(0, 0x11, 'u'), ok(1, ac)}, false},
		{"answer to nothing", false, [][]byte{nil, ok(1, ac)}, false},
		{"execute without metadata", false, [][]byte{
			tpkt(0, comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0), tcat(tpkt(1, 2, 0), eof(2, ac), tpkt(3, 0x00, 0x00, 1), eof(4, ac)),
			tpkt(0, comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0), tcat(tpkt(1, 1, 1), coldef, eof(3, ac), tpkt(4, 0x00, 0x00, 1), eof(5, ac)),
		}, true},
		{"ping", false, [][]byte{tpkt(0, comPing), ok(1, ac)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var caps uint32
			if c.deprecateEOF {
				caps = mywire.CapDeprecateEOF
			}
			quit, clean := run(t, newTracker(caps, mariadbCacheMetadata, statusAutocommit), c.steps...)
			if clean != c.clean || quit != c.clean {
				t.Errorf("quit %v clean %v, want %v", quit, clean, c.clean)
			}
		})
	}
}

func split(p []byte) [][]byte {
	var out [][]byte
	for i := range p {
		if i > 0 {
			out = append(out, nil) // the client says nothing meanwhile
		}
		out = append(out, p[i:i+1])
	}
	return out
}

// A COM_QUIT is held back only when it is the chunk's last packet and
// nothing follows it.
func TestTrackerQuitPlacement(t *testing.T) {
	tr := newTracker(0, 0, statusAutocommit)
	if n, q := tr.FromClient(tcat(quitPkt, query("x"))); q || n != len(quitPkt)+len(query("x")) {
		t.Fatalf("a quit followed by a query: forward %d quit %v", n, q)
	}
	if tr.Clean() {
		t.Fatal("clean after a quit followed by a query")
	}
	tr = newTracker(0, 0, statusAutocommit)
	tr.FromClient(query("select 1"))
	tr.FromUpstream(ok(1, statusAutocommit))
	// The query's answer is still owed: the quit goes to the server.
	if n, q := tr.FromClient(tcat(query("y"), quitPkt)); q || n != len(query("y"))+len(quitPkt) {
		t.Fatalf("a query then a quit: forward %d quit %v", n, q)
	}
	if tr.Clean() {
		t.Fatal("clean with a query unanswered")
	}
	tr = newTracker(0, 0, statusAutocommit)
	if _, q := tr.FromClient(quitPkt); !q || !tr.Clean() {
		t.Fatal("a lone quit is not clean")
	}
	tr.FromClient([]byte{1})
	if tr.Clean() {
		t.Fatal("clean after bytes past the quit")
	}
}

// A packet of 0xffffff bytes continues in the next: together they are
// one command.
func TestTrackerLongPacket(t *testing.T) {
	tr := newTracker(0, 0, statusAutocommit)
	big := make([]byte, maxPayload)
	big[0] = comQuery
	tr.FromClient(tcat([]byte{0xff, 0xff, 0xff, 0}, big, tpkt(1, 'x')))
	tr.FromUpstream(ok(1, statusAutocommit))
	if _, q := tr.FromClient(quitPkt); !q || !tr.Clean() {
		t.Fatal("a long query then a quit is not clean")
	}
}
