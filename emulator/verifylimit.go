package emulator

import (
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// CompetingText is RDS's word for an IAM login it throttled (its
// iam-db-auth-error log says "The IAM authentication failed because of
// too many competing requests"). Whether a client sees these words, or
// only the generic "PAM authentication failed" / "Access denied", is not
// documented: FailNextVerifies puts them in the client's message, a
// verify rate (SetVerifyRate) does not, so a client can be tested with
// both.
const CompetingText = "The IAM authentication failed because of too many competing requests"

// errCompeting is a token refused by the emulated throttle; named says
// the client's message carries CompetingText.
type errCompeting struct{ named bool }

func (e *errCompeting) Error() string { return CompetingText }

// verifyLimit is an instance's emulated throttle on IAM logins.
type verifyLimit struct {
	limiter  atomic.Pointer[rate.Limiter] // nil: no rate
	accepted atomic.Int64
}

// SetVerifyRate makes the front refuse IAM logins over perSecond (burst:
// one second's worth) as RDS refuses logins over its rate, with the
// generic failure (PostgreSQL's "PAM authentication failed", MySQL's
// "Access denied") and CompetingText in the front's log; 0 removes the
// limit. The setting shows in State; undo it before a shared front's
// test ends.
func (i *instance) SetVerifyRate(perSecond float64) {
	i.aws.mu.Lock()
	i.db.verifyRate = perSecond
	i.aws.mu.Unlock()
	if perSecond <= 0 {
		i.verify.limiter.Store(nil)
		return
	}
	i.verify.limiter.Store(rate.NewLimiter(rate.Limit(perSecond), max(int(perSecond), 1)))
}

// FailNextVerifies makes the next n IAM logins fail as throttled, with
// CompetingText in the client's message, whatever their token; 0 clears
// it. What is left of n shows in State.
func (i *instance) FailNextVerifies(n int) {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	i.db.failVerifies = max(n, 0)
}

// Accepted is how many connections the front has accepted: a client that
// reuses a connection dialed earlier is not counted again.
func (i *instance) Accepted() int64 { return i.verify.accepted.Load() }

// throttle says whether this login is refused by the emulated throttle
// (FailNextVerifies first, then the verify rate).
func (i *instance) throttle() error {
	i.aws.mu.Lock()
	if i.db.failVerifies > 0 {
		i.db.failVerifies--
		i.aws.mu.Unlock()
		return &errCompeting{named: true}
	}
	i.aws.mu.Unlock()
	if l := i.verify.limiter.Load(); l != nil && !l.AllowN(time.Now(), 1) {
		return &errCompeting{}
	}
	return nil
}

// competingSuffix is what a client's login failure message adds for err:
// the throttle's words when FailNextVerifies refused it.
func competingSuffix(err error) string {
	var c *errCompeting
	if errors.As(err, &c) && c.named {
		return ": " + CompetingText
	}
	return ""
}
