package emulator

import (
	"cmp"
	"slices"
	"time"
)

// The emulator keeps what requests make it remember (session credentials,
// IMDS tokens, every secret and signature it saw) in bounded stores, so a
// long run or a storm of requests cannot grow it without limit. Each entry
// carries the time after which it may be forgotten (zero: never, for what
// a test created through the API rather than a request). A store only
// forgets when it is full: then every entry past its time goes, and if the
// store is still over three quarters full, the entries closest to their
// time go first (the older first among equals) until it is not. Entries that are never forgotten are not
// counted against the bound (tests make them one API call at a time).
//
// The bounds (see NewAWS):
//
//   - sessions: maxSessions (each about 1.2 KB: a session token of ~1 KB);
//     a session is forgotten an hour after it expires (sessionRetention), so
//     a caller still hears ExpiredToken, not InvalidClientTokenId, for that
//     hour.
//   - IMDS tokens: maxIMDSTokens (each under 100 bytes), forgotten when
//     they expire.
//   - seen secrets: maxSeen entries and maxSeenBytes bytes of values;
//     session secrets go with their session, IMDS tokens with their expiry,
//     request signatures, RDS token signatures and web identity tokens
//     seenRetention after they were seen.
const (
	maxSessions      = 10000
	maxIMDSTokens    = 10000
	maxSeen          = 100000
	maxSeenBytes     = 32 << 20
	sessionRetention = time.Hour
	seenRetention    = time.Hour
)

// entry is a stored value, when it may be forgotten, and what it costs.
type entry[V any] struct {
	value  V
	forget time.Time // zero: never
	cost   int
	seq    uint64 // order of insertion: of two entries with the same time, the older goes first
}

// boundedStore maps keys to values under a bound on entries and on their
// total cost (bytes). Not safe for concurrent use: the AWS holds a.mu.
type boundedStore[V any] struct {
	maxEntries, maxCost int
	items               map[string]entry[V]
	cost                int // of the entries that may be forgotten
	count               int // entries that may be forgotten
	seq                 uint64
}

func newBoundedStore[V any](maxEntries, maxCost int) *boundedStore[V] {
	return &boundedStore[V]{maxEntries: maxEntries, maxCost: maxCost, items: map[string]entry[V]{}}
}

// put stores v under key until forget (zero: never), costing cost; now is
// the emulator clock, used when the store is full.
func (s *boundedStore[V]) put(key string, v V, forget time.Time, cost int, now time.Time) {
	s.delete(key)
	s.seq++
	s.items[key] = entry[V]{value: v, forget: forget, cost: cost, seq: s.seq}
	if forget.IsZero() {
		return
	}
	s.count++
	s.cost += cost
	if s.count > s.maxEntries || (s.maxCost > 0 && s.cost > s.maxCost) {
		s.shrink(now)
	}
}

func (s *boundedStore[V]) get(key string) (V, bool) {
	e, ok := s.items[key]
	return e.value, ok
}

func (s *boundedStore[V]) delete(key string) {
	if old, ok := s.items[key]; ok {
		delete(s.items, key)
		if !old.forget.IsZero() {
			s.count--
			s.cost -= old.cost
		}
	}
}

func (s *boundedStore[V]) len() int { return len(s.items) }

// all calls f for every entry until f returns false.
func (s *boundedStore[V]) all(f func(key string, v V) bool) {
	for k, e := range s.items {
		if !f(k, e.value) {
			return
		}
	}
}

// shrink forgets what is past its time, then the entries nearest to it
// until the store is at most three quarters full.
func (s *boundedStore[V]) shrink(now time.Time) {
	type candidate struct {
		key    string
		forget time.Time
		seq    uint64
	}
	var keep []candidate
	for k, e := range s.items {
		switch {
		case e.forget.IsZero():
		case !now.Before(e.forget):
			s.delete(k)
		default:
			keep = append(keep, candidate{k, e.forget, e.seq})
		}
	}
	targetCount, targetCost := s.maxEntries*3/4, s.maxCost*3/4
	if s.count <= targetCount && (s.maxCost <= 0 || s.cost <= targetCost) {
		return
	}
	slices.SortFunc(keep, func(a, b candidate) int {
		if c := a.forget.Compare(b.forget); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for _, c := range keep {
		if s.count <= targetCount && (s.maxCost <= 0 || s.cost <= targetCost) {
			return
		}
		s.delete(c.key)
	}
}
