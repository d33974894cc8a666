package mixload

import (
	"crypto/md5"
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
)

// Row payloads are made from (session, seq) alone, so that any copy of a
// row can be checked anywhere without keeping it: a reply that carries
// another session's row, or a byte changed on the way, no longer matches.
// They mix in what byte-exact relaying and the protocols' escaping must
// survive: quotes, backslashes, tabs and newlines (COPY's text format
// escapes those), multi-byte UTF-8, and on MySQL NUL and bytes that are
// not UTF-8.

// textPieces are what a text payload is made of, ASCII most of the time.
var textPieces = []string{"\t", "\n", "\\", "'", "\"", "é", "漢", "🙂"}

// payload is row seq of session tag. binary allows any byte (MySQL BLOBs);
// otherwise it is valid UTF-8 without NUL or control characters other
// than tab and newline (Postgres text).
func payload(tag string, seq int, binaryOK bool) []byte {
	rng := rowRand(tag, seq)
	n := 16 + rng.IntN(240)
	b := make([]byte, 0, n+len(tag)+16)
	b = append(b, tag...)
	b = append(b, '#')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '|')
	for len(b) < n {
		switch r := rng.IntN(100); {
		case r < 84:
			b = append(b, byte(0x20+rng.IntN(0x7f-0x20)))
		case r < 96:
			b = append(b, textPieces[rng.IntN(len(textPieces))]...)
		case binaryOK && r < 98:
			b = append(b, 0)
		case binaryOK:
			b = append(b, 0xff, 0xfe)
		default:
			b = append(b, 'z')
		}
	}
	return b
}

// rowRand is the random source of one row, seeded by its key.
func rowRand(tag string, seq int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(tag))
	return rand.New(rand.NewPCG(h.Sum64(), uint64(seq)))
}

// rowHash is a row's part of the table checksum: the first 15 hex digits
// (60 bits) of md5("session:seq:payload"), which both servers compute in
// SQL. Sums of these are order-free and fit a numeric/DECIMAL sum, so the
// check needs no memory for the table's content, however long the run.
func rowHash(tag string, seq int, payload []byte) uint64 {
	h := md5.New()
	h.Write([]byte(tag))
	h.Write([]byte{':'})
	h.Write(strconv.AppendInt(nil, int64(seq), 10))
	h.Write([]byte{':'})
	h.Write(payload)
	return binary.BigEndian.Uint64(h.Sum(nil)[:8]) >> 4
}

// appendCopyLine appends a row in COPY's text format (tab-separated,
// backslash escapes), exactly as COPY TO STDOUT writes it back.
func appendCopyLine(b []byte, tag string, seq int, payload []byte) []byte {
	b = append(b, tag...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '\t')
	for _, c := range payload {
		switch c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\n')
}

// largeValue is a value of n bytes (any byte values) that starts with the
// session's tag and seq: an upload of several MB.
func largeValue(tag string, seq int, n int) []byte {
	rng := rowRand(tag, -seq)
	b := make([]byte, n)
	head := strconv.AppendInt(append([]byte(tag), '#'), int64(seq), 10)
	i := copy(b, append(head, '|'))
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	for ; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// repeatUnit is what the server repeats for a large download: it names
// the session, so a download that reaches another session is seen.
func repeatUnit(tag string, seq int) string {
	return tag + "#" + strconv.Itoa(seq) + "|0123456789abcdefghijklmnopqrstuvwxyz"
}
