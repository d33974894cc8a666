package mysql

import (
	"bytes"
	"testing"
)

// FuzzTracker: any bytes either way, cut anywhere, never panic the
// tracker, and what it holds back is only ever one whole COM_QUIT at the
// end of a client chunk.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{5, 0, 0, 0, 3, 's', 'e', 'l', 'e', 'c'}, []byte{7, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}, uint8(3), uint8(0))
	f.Add(tcat(query("x"), quitPkt), tcat(tpkt(1, 1), coldef, eof(3, 2), tpkt(4, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0, 'x'), eof(5, 2)), uint8(7), uint8(1))
	f.Fuzz(func(t *testing.T, client, server []byte, cut, flags uint8) {
		var caps, ext uint32
		if flags&1 != 0 {
			caps |= 1 << 24 // CLIENT_DEPRECATE_EOF
		}
		if flags&2 != 0 {
			ext |= mariadbCacheMetadata
		}
		tr := newTracker(caps, ext, statusAutocommit)
		step := int(cut%16) + 1
		for len(client) > 0 || len(server) > 0 {
			if n := min(step, len(client)); n > 0 {
				chunk := client[:n]
				client = client[n:]
				fwd, quit := tr.FromClient(chunk)
				if fwd < 0 || fwd > len(chunk) {
					t.Fatalf("forward %d of %d", fwd, len(chunk))
				}
				if quit && !bytes.Equal(chunk[fwd:], quitPkt) {
					t.Fatalf("held back %x, not a COM_QUIT", chunk[fwd:])
				}
				if !quit && fwd != len(chunk) {
					t.Fatalf("held back %d bytes without a quit", len(chunk)-fwd)
				}
			}
			if n := min(step+1, len(server)); n > 0 {
				tr.FromUpstream(server[:n])
				server = server[n:]
			}
		}
		tr.Clean()
	})
}
