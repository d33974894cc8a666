package mixload

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/rand/v2"
)

// errWrong ends a session after a wrong answer (already recorded).
var errWrong = errors.New("wrong answer")

// sessionCore is what a session of either engine keeps besides its
// connection: the run, its tag, the row numbers it has used, the counter
// its identity checks send, and a random source of its own (seeded by the
// run's seed and the tag, so that a run repeats its choices).
type sessionCore struct {
	r     *run
	tag   string
	nonce int64
	seq   int // last row seq used
	rng   *rand.Rand
}

func newSessionCore(r *run, tag string) sessionCore {
	return sessionCore{r: r, tag: tag, rng: rand.New(rand.NewPCG(r.opts.Seed, uint64(len(tag))<<32|uint64(hashTag(tag))))}
}

// core gives the engine-neutral loops the shared part of a session.
func (s *sessionCore) core() *sessionCore { return s }

// nextSeq reserves n row numbers and returns the first.
func (s *sessionCore) nextSeq(n int) int {
	first := s.seq + 1
	s.seq += n
	return first
}

// fewRows reserves between 1 and most row numbers, at random.
func (s *sessionCore) fewRows(most int) (n, first int) {
	n = 1 + s.rng.IntN(most)
	return n, s.nextSeq(n)
}

// wrong records a wrong answer and ends the session.
func (s *sessionCore) wrong(op, format string, args ...any) error {
	s.r.wrongAnswer(s.tag, op, format, args...)
	return errWrong
}

// session is what the engine-neutral loops (long sessions, the cancel and
// kill pairs) need of an engine's session.
type session interface {
	core() *sessionCore
	// identity asks for the tag, a fresh counter and the backend id, and
	// requires all three to be this session's.
	identity(ctx context.Context) error
	// close ends the session and counts it closed.
	close()
}

// admit checks a new session's first answer, its own tag and its backend
// id (got, id), and registers the id: no other open session may have it.
// It counts the session opened; on errWrong the caller closes the
// connection.
func (r *run) admit(tag, got string, id int64) error {
	if got != tag {
		r.wrongAnswer(tag, "first query", "tag %q", got)
		return errWrong
	}
	if err := r.live.open(id, tag); err != nil {
		r.wrongAnswer(tag, "first query", "%v", err)
		return errWrong
	}
	r.st.opened.Add(1)
	return nil
}

// release unregisters a session's backend id, closes its connection with
// shut, and counts it closed; an error closing it is a failure.
func (r *run) release(tag string, id int64, shut func() error) {
	r.live.close(id, tag)
	if err := shut(); err != nil {
		r.fail(tag, "close", err)
	}
	r.st.closed.Add(1)
}

// hashTag is FNV-1a of a tag, to seed a session's random source.
func hashTag(tag string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(tag); i++ {
		h = (h ^ uint32(tag[i])) * 16777619
	}
	return h
}

// checkIdentity requires an identity answer (tag, nonce, backend id) to be
// this session's; idName names the id in a wrong answer.
func (s *sessionCore) checkIdentity(tag string, nonce, id, wantID int64, idName string) error {
	if tag != s.tag || nonce != s.nonce {
		return s.wrong("identity", "got (%q, %d), want (%q, %d)", tag, nonce, s.tag, s.nonce)
	}
	if id != wantID {
		return s.wrong("identity", "%s %d, the session began on %d", idName, id, wantID)
	}
	s.r.st.identity.Add(1)
	return nil
}

// md5hex is MD5 in hex, as the servers' md5() returns it.
func md5hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
