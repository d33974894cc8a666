package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// benchRelay starts a relay between two loopback TCP pairs, as the engines
// run it (an idle timeout, an observer and a farewell follow every chunk),
// and returns the client's end, the server's end, and a wait for the relay
// to end.
func benchRelay(b *testing.B) (client, server net.Conn, wait func()) {
	b.Helper()
	client, proxyClientSide := netpair.TCP(b)
	proxyUpstreamSide, server := netpair.TCP(b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Relay(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
	}()
	return client, server, func() {
		client.Close()
		server.Close()
		<-done
	}
}

// BenchmarkRelayStream: bulk bytes one way (a COPY, a big result set), 64
// KiB per iteration; MB/s and allocations per 64 KiB through the relay.
func BenchmarkRelayStream(b *testing.B) {
	for _, dir := range []string{"fromClient", "fromUpstream"} {
		b.Run(dir, func(b *testing.B) {
			client, server, wait := benchRelay(b)
			src, dst := client, server
			if dir == "fromUpstream" {
				src, dst = server, client
			}
			block := make([]byte, 64<<10)
			got := make([]byte, len(block))
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			errc := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := io.ReadFull(dst, got); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			b.ResetTimer()
			report := cpuMeter(b)
			for range b.N {
				if _, err := src.Write(block); err != nil {
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
}

// BenchmarkRelayPingPong: a small request and its small answer per
// iteration (a point query): the per-chunk cost of the relay, both ways.
func BenchmarkRelayPingPong(b *testing.B) {
	client, server, wait := benchRelay(b)
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
}

// cpuMeter starts counting the process's CPU time; the function it
// returns reports it per iteration as cpu-ns/op. On a shared machine the
// wall time per iteration swings with the neighbours' load; the CPU the
// relay (and the benchmark's own client and server) spend per iteration
// much less, so before/after comparisons read this one.
func cpuMeter(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}
