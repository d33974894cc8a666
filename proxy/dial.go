package proxy

import (
	"context"
	"net"
	"time"
)

// DefaultUpstreamTCPTimeout is how long an upstream may leave the proxy's
// data unacknowledged, or an idle session's keepalive probes unanswered,
// before the session ends as a dead path. Without it a query sent into a
// dead network path (a failed-over instance, a dropped route, a security
// group change) waits for the kernel's retransmission limit, about 15
// minutes, and the client hangs all that time.
const DefaultUpstreamTCPTimeout = 30 * time.Second

// DialUpstream returns the engines' way to reach an upstream: a TCP dial
// whose connection notices a dead path within timeout (0:
// DefaultUpstreamTCPTimeout; negative: off, the OS's defaults).
//
// Two mechanisms share the timeout, one per state a session can be in:
//
//   - Idle (nothing in flight): TCP keepalive, first probe after half the
//     timeout, the connection ends when probes have gone unanswered for
//     the other half.
//   - Data in flight: a watch on the socket's own TCP state (see
//     watchedConn). It ends the connection only when the peer has
//     acknowledged nothing for the timeout while data waits for its
//     acknowledgment.
//
// TCP_USER_TIMEOUT would be simpler, but since Linux 5.11 it also ends a
// connection whose peer is alive and acknowledging but not reading (its
// receive window closed): a COPY stuck behind a lock for longer than the
// timeout would lose its session. The watch tells the two apart.
func DialUpstream(timeout time.Duration) func(ctx context.Context, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = DefaultUpstreamTCPTimeout
	}
	d := &net.Dialer{}
	if timeout < 0 {
		return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	d.KeepAliveConfig = net.KeepAliveConfig{
		Enable:   true,
		Idle:     max(timeout/2, time.Second),
		Interval: max(timeout/6, time.Second),
		Count:    3,
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok || !canWatch {
			return c, nil
		}
		return newWatchedConn(tc, timeout), nil
	}
}
