package proxy

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"
)

// DefaultUpstreamTCPTimeout is how long an upstream may leave the proxy's
// data unacknowledged, or an idle session's keepalive probes unanswered,
// before the session ends. Without it a query sent into a dead network
// path (a failed-over instance, a dropped route, a security group change)
// waits for the kernel's retransmission limit, about 15 minutes, and the
// client hangs all that time. A live server acknowledges at once even
// while it works on a long query, so 30 s only ends sessions whose
// peer is gone.
const DefaultUpstreamTCPTimeout = 30 * time.Second

// UpstreamDialer is the dialer for connections to an upstream. timeout
// (0: DefaultUpstreamTCPTimeout; negative: off) bounds how long the path
// may be dead before reads and writes fail with "connection timed out":
// TCP_USER_TIMEOUT for data in flight, and keepalive probes, sent after
// half of it idle, for a session waiting quietly. Without TCP_USER_TIMEOUT
// (off, or not Linux) the keepalive uses Go's defaults.
func UpstreamDialer(timeout time.Duration) *net.Dialer {
	if timeout == 0 {
		timeout = DefaultUpstreamTCPTimeout
	}
	d := &net.Dialer{}
	if timeout < 0 {
		return d
	}
	// Probes start at half the timeout and repeat so that several fit in
	// the other half; Linux ends the connection when the timeout has
	// passed since the last answer, whatever the probe count.
	d.KeepAliveConfig = net.KeepAliveConfig{
		Enable:   true,
		Idle:     max(timeout/2, time.Second),
		Interval: max(timeout/6, time.Second),
		Count:    9,
	}
	d.ControlContext = func(_ context.Context, network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		return setUserTimeout(c, timeout)
	}
	return d
}

// DialUpstream dials addr with UpstreamDialer(timeout): the engines'
// default way to reach an upstream.
func DialUpstream(timeout time.Duration) func(ctx context.Context, addr string) (net.Conn, error) {
	d := UpstreamDialer(timeout)
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}
