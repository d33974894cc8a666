package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Limit caps how many client connections are served at once: one
// upstream's (--max-connections in its config), or all upstreams' together.
// Over a limit the engine tells the client in its own protocol ("too many
// connections") rather than closing silently.
type Limit struct {
	slots chan struct{}
	max   int
	scope string // "" for one upstream, or "all upstreams"
}

// NewLimit returns a limit of max connections, or nil (no limit) for
// max <= 0. scope names what it covers in the client's message.
func NewLimit(max int, scope string) *Limit {
	if max <= 0 {
		return nil
	}
	return &Limit{slots: make(chan struct{}, max), max: max, scope: scope}
}

// Open is how many connections hold a slot.
func (l *Limit) Open() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

// Max is the limit (0: none).
func (l *Limit) Max() int {
	if l == nil {
		return 0
	}
	return l.max
}

// TakeAll reserves a slot in every limit without waiting. When one is full
// it gives back what it took and returns that limit's message for the
// client; otherwise release frees the slots.
func TakeAll(limits ...*Limit) (release func(), refused string) {
	var taken []*Limit
	release = func() {
		for _, l := range taken {
			<-l.slots
		}
	}
	for _, l := range limits {
		if l == nil {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			taken = append(taken, l)
		default:
			release()
			return nil, l.message()
		}
	}
	return release, ""
}

func (l *Limit) message() string {
	what := "the proxy's limit"
	if l.scope != "" {
		what = "the proxy's limit for " + l.scope
	}
	return fmt.Sprintf("too many connections: %s of %d is reached. Fix: close idle connections or raise --max-connections", what, l.max)
}

// ShutdownMessage is what a client still logging in is told when the proxy
// shuts down.
const ShutdownMessage = "the proxy is shutting down; connect again (to its replacement)"

// Unexplained sorts out a handshake that failed without an engine error
// to show: during a shutdown the client is told so (shutdown true); a
// client that was too slow or went away is only logged, and reason labels
// it.
func Unexplained(ctx context.Context, log *slog.Logger, err error, start time.Time) (shutdown bool, reason string) {
	switch {
	case ctx.Err() != nil:
		return true, ReasonShutdown
	case IsTimeout(err):
		log.Info("handshake timed out", "after", time.Since(start).Round(time.Millisecond))
		return false, ReasonTimeout
	default:
		log.Info("client went away during handshake", "err", err)
		return false, ReasonClientGone
	}
}

// RelayAndLog relays a logged-in session until either side ends it, and
// logs one line for its end: duration, bytes each way, outcome. obs hears
// the bytes as they go; farewell (may be nil) tells the client why when
// the upstream breaks the session off.
func RelayAndLog(ctx context.Context, log *slog.Logger, obs Observer, farewell Farewell, client, upstream net.Conn, start time.Time, idle time.Duration) {
	stats := Stats{Observer: obs, IdleTimeout: idle, Farewell: farewell}
	err := Relay(ctx, client, upstream, &stats, 0)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond), "bytes_from_client", stats.FromClient.Load(), "bytes_from_upstream", stats.FromUpstream.Load()}
	switch {
	case errors.Is(err, ErrIdle):
		log.Info("connection ended", append(attrs, "outcome", "idle", "idle_timeout", idle)...)
		return
	case err != nil:
		log.Info("connection ended", append(attrs, "outcome", "error", "err", err)...)
		return
	}
	log.Info("connection ended", append(attrs, "outcome", "ok")...)
}
