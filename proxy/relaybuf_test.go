package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// TestRelayChunkBoundaries: answers of every size around the relay's
// buffer sizes arrive whole and at once, with plain and TLS sockets on
// either side. The relay reads a TLS side with a small buffer and a
// larger pooled one after a read fills it, and a plain socket only once
// it is readable: an answer that ends exactly at a buffer's end must
// not wait for the next bytes (the client would wait for it forever).
func TestRelayChunkBoundaries(t *testing.T) {
	sizes := []int{1, 5, waitBufSize - 1, waitBufSize, waitBufSize + 1, 2 * waitBufSize,
		relayBufSize - 1, relayBufSize, relayBufSize + 1, 2 * relayBufSize, 3*relayBufSize + 7}
	for _, kind := range []string{"tcp-tcp", "tcp-tls", "tls-tls"} {
		t.Run(kind, func(t *testing.T) {
			client, proxyClientSide := netpair.TCP(t)
			proxyUpstreamSide, server := tlsPair(t)
			if kind == "tcp-tcp" {
				proxyUpstreamSide, server = netpair.TCP(t)
			}
			if kind == "tls-tls" {
				proxyClientSide, client = tlsPair(t)
			}
			done := make(chan error, 1)
			go func() {
				done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
			}()
			for i, n := range sizes {
				req := bytes.Repeat([]byte{byte('a' + i)}, n)
				ans := bytes.Repeat([]byte{byte('A' + i)}, n)
				client.SetDeadline(time.Now().Add(10 * time.Second))
				server.SetDeadline(time.Now().Add(10 * time.Second))
				errc := make(chan error, 1)
				go func() {
					got := make([]byte, n)
					if _, err := io.ReadFull(server, got); err != nil {
						errc <- fmt.Errorf("server reading %d bytes: %w", n, err)
						return
					}
					if !bytes.Equal(got, req) {
						errc <- fmt.Errorf("server got the wrong %d bytes", n)
						return
					}
					_, err := server.Write(ans)
					errc <- err
				}()
				if _, err := client.Write(req); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, n)
				if _, err := io.ReadFull(client, got); err != nil {
					t.Fatalf("client reading the %d-byte answer: %v", n, err)
				}
				if !bytes.Equal(got, ans) {
					t.Fatalf("client got the wrong %d-byte answer", n)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			// The client leaves, then the server (rule 2: the relay waits
			// for the server).
			client.Close()
			server.Close()
			if err := <-done; err != nil {
				t.Fatalf("relay: %v", err)
			}
		})
	}
}

// TestRelayIdleSessionHoldsNoBuffer: an idle session holds no relay
// buffer (it waits for readability without one), over plain sockets and
// over a TLS upstream. Before issue 15 each idle session held two 16 KiB
// buffers; the bound here is far below that and far above what a
// session's own structures take.
func TestRelayIdleSessionHoldsNoBuffer(t *testing.T) {
	const sessions = 100
	for _, kind := range []string{"tcp", "tls"} {
		t.Run(kind, func(t *testing.T) {
			type pair struct{ client, pc, pu, server net.Conn }
			pairs := make([]pair, sessions)
			for i := range pairs {
				p := &pairs[i]
				p.client, p.pc = netpair.TCP(t)
				if kind == "tls" {
					p.pu, p.server = tlsPair(t)
				} else {
					p.pu, p.server = netpair.TCP(t)
				}
			}
			// Each session moves more than a buffer's worth both ways
			// first, so every buffer was taken and filled once.
			big := make([]byte, relayBufSize+100)
			if kind == "tls" {
				// A tls.Conn keeps its record buffers once grown, and its
				// records grow over the first 128 KiB it sends: grow
				// them all before, so that only the relay's count (the
				// server's end keeps its own; TestReadTLSLetsGo checks
				// that the relay's end does not).
				warm := make([]byte, 160<<10)
				for _, p := range pairs {
					go p.pu.Write(warm)
					if _, err := io.ReadFull(p.server, make([]byte, len(warm))); err != nil {
						t.Fatal(err)
					}
					go p.server.Write(warm)
					if _, err := io.ReadFull(p.pu, make([]byte, len(warm))); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := heapInUse()
			done := make(chan error, sessions)
			for _, p := range pairs {
				go func() {
					done <- relayErr(context.Background(), p.pc, p.pu, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
				}()
				go p.client.Write(big)
				if _, err := io.ReadFull(p.server, make([]byte, len(big))); err != nil {
					t.Fatal(err)
				}
				go p.server.Write(big)
				if _, err := io.ReadFull(p.client, make([]byte, len(big))); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // every direction is parked
			per := (heapInUse() - before) / sessions
			t.Logf("%d bytes of heap per idle %s session", per, kind)
			limit := int64(6 << 10)
			if per > limit {
				t.Errorf("%d bytes of heap per idle %s session, want at most %d (two held relay buffers are %d)", per, kind, limit, 2*relayBufSize)
			}
			for _, p := range pairs {
				p.client.Close()
				p.server.Close()
			}
			for range sessions {
				<-done
			}
		})
	}
}

// heapInUse is the live heap after a full collection (twice: sync.Pool
// keeps what it holds through one).
func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
