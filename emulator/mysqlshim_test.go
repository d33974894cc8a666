package emulator

import (
	"bytes"
	"io"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// packet frames payload with seq.
func packet(seq byte, payload []byte) []byte {
	return append(packetHeader(len(payload), seq), payload...)
}

// copyShimmed rewrites only an exact query that opens a command; a packet
// that continues one, a large one (never buffered: the shim is not even
// asked) and every other command pass byte for byte, and a packet cut
// short by the client's end is delivered as far as it came.
func TestCopyShimmedRewritesOnlyOpeningQueries(t *testing.T) {
	client, src := netpair.TCP(t)
	dst, backend := netpair.TCP(t)
	const asked = "SELECT @@aurora_server_id"
	shim := func(q string) (string, bool) {
		if len(q) > shimLimit {
			t.Errorf("the shim was asked about a query of %d bytes (over the %d byte limit)", len(q), shimLimit)
		}
		return "SELECT 'alpha'", q == asked
	}
	query := func(text string) []byte { return append([]byte{comQuery}, text...) }
	big := query(asked + string(bytes.Repeat([]byte(" "), 70<<10)))
	var in, want []byte
	add := func(sent, got []byte) {
		in, want = append(in, sent...), append(want, got...)
	}
	add(packet(0, query(asked)), packet(0, query("SELECT 'alpha'")))
	add(packet(1, query(asked)), packet(1, query(asked)))         // continues a command
	add(packet(0, query(asked+" ")), packet(0, query(asked+" "))) // not exact
	add(packet(0, big), packet(0, big))
	add(packet(0, []byte{0x0e}), packet(0, []byte{0x0e})) // COM_PING
	add(packet(0, nil), packet(0, nil))
	add(packet(0, query(asked)), packet(0, query("SELECT 'alpha'")))
	cut := packet(0, query("SELECT 1"))[:7]
	add(cut, cut)

	ended := make(chan halfEnd, 1)
	go func() { ended <- copyShimmed(dst, src, shim) }()
	go func() {
		client.Write(in)
		client.Close()
	}()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(backend)
		got <- b
	}()
	if e := <-ended; e != srcEnded {
		t.Fatalf("copyShimmed ended with %d, want srcEnded", e)
	}
	dst.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the backend got %d bytes, want %d (first difference at %d)", len(b), len(want), firstDiff(b, want))
	}
}

func firstDiff(a, b []byte) int {
	for n := range min(len(a), len(b)) {
		if a[n] != b[n] {
			return n
		}
	}
	return min(len(a), len(b))
}
