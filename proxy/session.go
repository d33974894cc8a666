package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Slots caps how many client connections an engine serves at once; nil
// means no cap. Over the cap the engine tells the client in its own
// protocol ("too many connections") rather than closing silently.
type Slots chan struct{}

// NewSlots returns a cap of n connections, or nil for n <= 0.
func NewSlots(n int) Slots {
	if n <= 0 {
		return nil
	}
	return make(Slots, n)
}

// Take reserves a slot without waiting; false means the cap is reached.
// A nil Slots always has room.
func (s Slots) Take() bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives back a slot from Take.
func (s Slots) Release() {
	if s != nil {
		<-s
	}
}

// LimitMessage is what a client over the cap is told, in any protocol.
func LimitMessage(limit int) string {
	return fmt.Sprintf("too many connections: the proxy's limit of %d is reached. Fix: close idle connections or raise --max-connections", limit)
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
// the bytes as they go.
func RelayAndLog(ctx context.Context, log *slog.Logger, obs Observer, client, upstream net.Conn, start time.Time) {
	stats := Stats{Observer: obs}
	err := Relay(ctx, client, upstream, &stats, 0)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond), "bytes_from_client", stats.FromClient.Load(), "bytes_from_upstream", stats.FromUpstream.Load()}
	if err != nil {
		log.Info("connection ended", append(attrs, "outcome", "error", "err", err)...)
		return
	}
	log.Info("connection ended", append(attrs, "outcome", "ok")...)
}
