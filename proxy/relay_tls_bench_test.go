package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/wiretest"
)

// tlsPair is a loopback TCP connection with TLS over it, as the proxy's
// upstreams are: the dialing end (what the proxy holds) and the server's.
func tlsPair(t testing.TB) (proxySide, server net.Conn) {
	t.Helper()
	a, b := netpair.TCP(t)
	cfg, pool := wiretest.ServerTLS(t, "relay test CA")
	c := tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	s := tls.Server(b, cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// BenchmarkRelayTLS: the relay as the engines run it, a plain client
// and a TLS upstream: a point query's round trip, and bulk bytes from the
// upstream (a big result set), 64 KiB per iteration.
func BenchmarkRelayTLS(b *testing.B) {
	start := func(b *testing.B) (client, server net.Conn, wait func()) {
		client, proxyClientSide := netpair.TCP(b)
		proxyUpstreamSide, server := tlsPair(b)
		done := make(chan struct{})
		go func() {
			defer close(done)
			Relay(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
		}()
		return client, server, func() { client.Close(); server.Close(); <-done }
	}
	b.Run("PingPong", func(b *testing.B) {
		client, server, wait := start(b)
		req, ans := make([]byte, 64), make([]byte, 256)
		buf := make([]byte, 256)
		b.SetBytes(int64(len(req) + len(ans)))
		b.ReportAllocs()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if _, err := io.ReadFull(server, buf[:len(req)]); err != nil {
					errc <- err
					return
				}
				if _, err := server.Write(ans); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		b.ResetTimer()
		report := cpuMeter(b)
		for range b.N {
			if _, err := client.Write(req); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(client, buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		report()
		b.StopTimer()
		wait()
	})
	b.Run("StreamFromUpstream", func(b *testing.B) {
		client, server, wait := start(b)
		block := make([]byte, 64<<10)
		got := make([]byte, len(block))
		b.SetBytes(int64(len(block)))
		b.ReportAllocs()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if _, err := io.ReadFull(client, got); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		b.ResetTimer()
		report := cpuMeter(b)
		for range b.N {
			if _, err := server.Write(block); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		report()
		b.StopTimer()
		wait()
	})
}
