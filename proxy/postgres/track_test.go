package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func fe(t *testing.T, msgs ...pgproto3.FrontendMessage) []byte {
	t.Helper()
	var b []byte
	var err error
	for _, m := range msgs {
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func be(t *testing.T, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	var err error
	for _, m := range msgs {
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// step is one chunk either way.
type step struct {
	client bool
	b      []byte
}

func TestTrackerVerdicts(t *testing.T) {
	q := func(s string) []byte { return fe(t, &pgproto3.Query{String: s}) }
	z := func(s byte) []byte { return be(t, &pgproto3.ReadyForQuery{TxStatus: s}) }
	cc := be(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	x := fe(t, &pgproto3.Terminate{})
	ext := fe(t, &pgproto3.Parse{Query: "select 1"}, &pgproto3.Bind{}, &pgproto3.Execute{})
	sync := fe(t, &pgproto3.Sync{})
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		steps []step
		clean bool
	}{
		{"query then quit", []step{{true, q("select 1")}, {false, cat(cc, z('I'))}, {true, x}}, true},
		{"quit at once", []step{{true, x}}, true},
		{"extended with sync", []step{{true, cat(ext, sync)}, {false, cat(be(t, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}), cc, z('I'))}, {true, x}}, true},
		{"copy in", []step{{true, q("copy t from stdin")}, {false, be(t, &pgproto3.CopyInResponse{})},
			{true, fe(t, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{})}, {false, cat(cc, z('I'))}, {true, x}}, true},
		{"inside a transaction", []step{{true, q("begin")}, {false, cat(cc, z('T'))}, {true, x}}, false},
		{"after an error in a transaction", []step{{true, q("x")}, {false, z('E')}, {true, x}}, false},
		{"query unanswered", []step{{true, cat(q("select pg_sleep(1)"), x)}}, false},
		{"query answered after the quit", []step{{true, q("select 1")}, {true, x}, {false, cat(cc, z('I'))}}, false},
		{"extended without sync", []step{{true, ext}, {true, x}}, false},
		{"mid-copy", []step{{true, q("copy t from stdin")}, {false, be(t, &pgproto3.CopyInResponse{})}, {true, fe(t, &pgproto3.CopyData{Data: []byte("1\n")})}, {true, x}}, false},
		{"copy data outside copy", []step{{true, fe(t, &pgproto3.CopyData{Data: []byte("1\n")})}, {true, x}}, false},
		{"bytes after the quit", []step{{true, cat(x, q("select 1"))}}, false},
		{"a chunk after the quit", []step{{true, x}, {true, q("select 1")}}, false},
		{"server mid-message", []step{{true, q("select 1")}, {false, cat(cc, z('I'), be(t, &pgproto3.NotificationResponse{Channel: "c", Payload: "p"})[:7])}, {true, x}}, false},
		{"server mid-message after the quit", []step{{true, x}, {false, be(t, &pgproto3.NotificationResponse{Channel: "c", Payload: "p"})[:7]}}, false},
		{"unknown client message", []step{{true, fe(t, &pgproto3.PasswordMessage{Password: "x"})}, {true, x}}, false},
		{"ReadyForQuery for nothing", []step{{false, z('I')}, {true, x}}, false},
		{"broken length", []step{{true, []byte{'Q', 0, 0, 0, 1}}, {true, x}}, false},
	} {
		for _, split := range []bool{false, true} {
			tr := newTracker('I')
			var heldBack bool
			for _, s := range tc.steps {
				chunks := [][]byte{s.b}
				if split { // every byte its own chunk, except a Terminate's, which a client writes whole
					chunks = nil
					for i := range s.b {
						chunks = append(chunks, s.b[i:i+1])
					}
					if s.client && len(s.b) == len(x) && s.b[0] == 'X' {
						chunks = [][]byte{s.b}
					}
				}
				for _, c := range chunks {
					if s.client {
						n, quit := tr.FromClient(c)
						if quit {
							heldBack = true
							if n != len(c)-len(x) {
								t.Errorf("%s: forwarded %d of %d bytes with the quit", tc.name, n, len(c))
							}
						} else if n != len(c) {
							t.Errorf("%s: forwarded %d of %d bytes without a quit", tc.name, n, len(c))
						}
					} else {
						tr.FromUpstream(c)
					}
				}
			}
			if got := tr.Clean(); got != tc.clean {
				t.Errorf("%s (split %v): clean = %v, want %v", tc.name, split, got, tc.clean)
			}
			if tc.clean && !heldBack {
				t.Errorf("%s: a clean quit was forwarded", tc.name)
			}
		}
	}
}
