package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

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
