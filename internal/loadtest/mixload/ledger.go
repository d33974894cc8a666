package mixload

import (
	"math/big"
	"math/bits"
	"sort"
	"sync"
)

// sum128 adds 60-bit row hashes without overflow for any run length.
type sum128 struct{ hi, lo uint64 }

func (s *sum128) add(v uint64) {
	var c uint64
	s.lo, c = bits.Add64(s.lo, v, 0)
	s.hi += c
}

func (s *sum128) addSum(o sum128) {
	var c uint64
	s.lo, c = bits.Add64(s.lo, o.lo, 0)
	s.hi += o.hi + c
}

func (s sum128) String() string {
	v := new(big.Int).SetUint64(s.hi)
	v.Lsh(v, 64)
	v.Or(v, new(big.Int).SetUint64(s.lo))
	return v.String()
}

// batch is rows first..last of one session, committed together.
type batch struct {
	first, last int
	rows        int64
	sum         sum128
}

// newBatch hashes rows first..last of tag.
func newBatch(tag string, first, last int, binaryOK bool) batch {
	b := batch{first: first, last: last, rows: int64(last - first + 1)}
	for seq := first; seq <= last; seq++ {
		b.sum.add(rowHash(tag, seq, payload(tag, seq, binaryOK)))
	}
	return b
}

// ledger is what the run believes the rows table holds: the batches each
// session committed and has not deleted. It keeps sums, not rows, so its
// memory grows with batches only.
type ledger struct {
	mu       sync.Mutex
	sessions map[string][]batch // by tag, in seq order
}

func newLedger() *ledger { return &ledger{sessions: map[string][]batch{}} }

// commit records a batch that the server confirmed committed.
func (l *ledger) commit(tag string, b batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sessions[tag] = append(l.sessions[tag], b)
}

// live is how many rows tag has in the table.
func (l *ledger) live(tag string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, b := range l.sessions[tag] {
		n += b.rows
	}
	return n
}

// oldest returns tag's oldest batch when it has more than keep rows.
func (l *ledger) oldest(tag string, keep int64) (batch, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	bs := l.sessions[tag]
	for _, b := range bs {
		n += b.rows
	}
	if n <= keep || len(bs) < 2 {
		return batch{}, false
	}
	return bs[0], true
}

// remove forgets a batch the server confirmed deleted.
func (l *ledger) remove(tag string, b batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bs := l.sessions[tag]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].first >= b.first })
	if i < len(bs) && bs[i].first == b.first {
		l.sessions[tag] = append(bs[:i:i], bs[i+1:]...)
	}
}

// totals are the rows and the checksum the table must have.
func (l *ledger) totals() (rows int64, sum sum128) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, bs := range l.sessions {
		for _, b := range bs {
			rows += b.rows
			sum.addSum(b.sum)
		}
	}
	return rows, sum
}
