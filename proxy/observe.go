package proxy

import (
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Observer hears what happens to one upstream's client connections, for
// metrics. Every engine reports the same events, so the numbers mean the
// same for Postgres and MySQL. Implementations must be safe for concurrent
// use and fast: the byte callbacks run on the relay's path.
type Observer interface {
	// Accepted: a client connected. Every Accepted is followed by one Ended.
	Accepted()
	// Refused: the connection ended before the relay, with a failure.Reason label
	// (the client was told why, or had gone; or it was a Postgres cancel
	// request, failure.CancelRequest). Every Accepted is followed by exactly
	// one of Refused or LoggedIn.
	Refused(reason failure.Reason)
	// LoggedIn: the client is logged in upstream. handshake is from accept
	// to the relay; upstream is the part spent on the upstream (dial, TLS,
	// login).
	LoggedIn(handshake, upstream time.Duration)
	// Ended: the connection is closed, relayed or not.
	Ended()
	BytesFromClient(n int64)
	BytesFromUpstream(n int64)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Accepted()                   {}
func (NopObserver) Refused(failure.Reason)      {}
func (NopObserver) LoggedIn(_, _ time.Duration) {}
func (NopObserver) Ended()                      {}
func (NopObserver) BytesFromClient(n int64)     {}
func (NopObserver) BytesFromUpstream(n int64)   {}
