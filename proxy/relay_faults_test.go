package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// TestRelayUpstreamHalfClosedNotReading: the upstream says goodbye (FIN)
// and stops reading while the client still streams (a COPY FROM STDIN
// into a server that ended the session). The proxy's write to the
// upstream blocks with the windows full; the session must still end.
func TestRelayUpstreamHalfClosedNotReading(t *testing.T) {
	client, proxyClient := netpair.TCP(t)
	proxyUpstream, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClient, proxyUpstream, RelayOptions{Linger: time.Second})
	}()
	go func() {
		buf := make([]byte, 64<<10)
		client.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := client.Write(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	server.(*net.TCPConn).CloseWrite() // FIN; it never reads again
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the relay still runs 15 s after the upstream half-closed and stopped reading")
	}
}
