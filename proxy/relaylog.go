package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// RelayAndLog relays a logged-in session until it ends (see Relay), and
// logs one line for its end: duration, bytes each way, outcome.
func RelayAndLog(ctx context.Context, log *slog.Logger, client, upstream net.Conn, start time.Time, o RelayOptions) {
	counts, err := Relay(ctx, client, upstream, o)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond), "bytes_from_client", counts.FromClient, "bytes_from_upstream", counts.FromUpstream}
	switch {
	case errors.Is(err, ErrIdle):
		log.Info("connection ended", append(attrs, "outcome", "idle", "idle_timeout", o.IdleTimeout)...)
	case err != nil:
		log.Info("connection ended", append(attrs, "outcome", "error", "err", err)...)
	default:
		log.Info("connection ended", append(attrs, "outcome", "ok")...)
	}
}
