// Package conncut cuts a connection short when a context ends (its reads,
// or its reads and writes, fail at once), in a way that can be stopped for
// good: once Stop has returned no cut lands any more, so the deadlines the
// caller sets next stay as set.
//
// context.AfterFunc alone does not promise that: its stop function returns
// false while the callback runs, and that callback may be about to set a
// past deadline on a connection that has moved on. That is how a drain
// that starts just as a login finishes could kill the new session at its
// first read, and how a login step's cut could land in the next step. The
// proxy's client logins (proxy.Login) and the MySQL client login
// (wire/mywire) both use this package, so the race is solved once, in one
// place. It is no codec, but it lives under wire/ because wire packages
// import no project package except each other, and the proxy may import
// wire packages: here both can use it.
//
// The rule that makes it correct: every deadline change a Cut makes
// happens under its mutex, and stopped is final. A cut that has started
// holds the mutex until its deadline is set, so Stop waits for it; a cut
// that starts after Stop sees stopped and does nothing.
package conncut

import (
	"context"
	"net"
	"sync"
	"time"
)

// past is the deadline of a cut: any time in the past makes reads (and
// writes) fail at once with a timeout.
var past = time.Unix(1, 0)

// Cut watches one connection for one context.
type Cut struct {
	set       func(time.Time) error // the connection's SetReadDeadline or SetDeadline
	stopWatch func() bool           // stops the context.AfterFunc

	mu      sync.Mutex
	cut     bool // the deadline is in the past, for good
	stopped bool // no cut lands any more
}

// Reads cuts c's reads when ctx ends. Writes still work, so the peer can
// be told why.
func Reads(ctx context.Context, c net.Conn) *Cut { return watch(ctx, c.SetReadDeadline) }

// All cuts c's reads and writes when ctx ends.
func All(ctx context.Context, c net.Conn) *Cut { return watch(ctx, c.SetDeadline) }

func watch(ctx context.Context, set func(time.Time) error) *Cut {
	k := &Cut{set: set}
	k.stopWatch = context.AfterFunc(ctx, k.Now)
	return k
}

// Now cuts at once, unless Stop came first (an eviction uses it). The
// deadline stays in the past: Set no longer moves it.
func (k *Cut) Now() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.cut = true
	k.set(past)
}

// Set moves the deadline to t, unless the connection has been cut or the
// watch stopped (then the caller owns the deadlines).
func (k *Cut) Set(t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cut || k.stopped {
		return
	}
	k.set(t)
}

// Stop ends the watch. Once it returns no cut lands any more: a cut in
// progress has finished, a later one does nothing. It reports whether the
// connection was cut. Safe to call more than once.
func (k *Cut) Stop() (wasCut bool) {
	k.stopWatch()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	return k.cut
}

// Happened reports whether the connection was cut.
func (k *Cut) Happened() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cut
}
