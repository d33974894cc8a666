package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// relayErr runs Relay and keeps only its error.
func relayErr(ctx context.Context, client, upstream net.Conn, o RelayOptions) error {
	_, err := Relay(ctx, client, upstream, o)
	return err
}

// TestRelayBothWaysWithHalfClose: the client sends a request and closes
// its write side; the server still answers in full; then both close.
func TestRelayBothWaysWithHalfClose(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	var counts Counts
	done := make(chan error, 1)
	go func() {
		var err error
		counts, err = Relay(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: time.Second})
		done <- err
	}()

	req := bytes.Repeat([]byte("q"), 100_000)
	go func() {
		client.Write(req)
		client.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(server) // ends at the relayed half-close
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server got %d bytes, %v", len(got), err)
	}
	answer := bytes.Repeat([]byte("a"), 300_000)
	server.Write(answer)
	server.Close()
	back, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(back, answer) {
		t.Fatalf("client got %d bytes, %v", len(back), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}
	if counts.FromClient != int64(len(req)) || counts.FromUpstream != int64(len(answer)) {
		t.Fatalf("counts %d/%d", counts.FromClient, counts.FromUpstream)
	}
}

// TestRelayLingerEnds: after the upstream closes, a client that stays
// silent is closed after the linger time, not kept forever.
func TestRelayLingerEnds(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: 200 * time.Millisecond})
	}()
	server.Write([]byte("bye"))
	server.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("relay still running long after the upstream closed")
	}
	got, _ := io.ReadAll(client)
	if string(got) != "bye" {
		t.Fatalf("client got %q", got)
	}
}

// TestRelayStopsOnContext: cancelling ctx (a hard shutdown) closes both.
func TestRelayStopsOnContext(t *testing.T) {
	_, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, _ := netpair.TCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relayErr(ctx, proxyClientSide, proxyUpstreamSide, RelayOptions{}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("relay error %v, want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("relay ignores its context")
	}
}

// TestRelayWaitsForAnswersOwedToAHalfClosedClient: a client that sends a
// request and half-closes still gets the answer, however long the server
// takes (here longer than the linger).
func TestRelayWaitsForAnswersOwedToAHalfClosedClient(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: 100 * time.Millisecond})
	}()
	client.Write([]byte("query"))
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "query" {
		t.Fatalf("server got %q, %v", got, err)
	}
	time.Sleep(500 * time.Millisecond) // five lingers
	server.Write([]byte("late answer"))
	server.Close()
	back, err := io.ReadAll(client)
	if err != nil || string(back) != "late answer" {
		t.Fatalf("client got %q, %v; want the late answer", back, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}
}

// TestRelayWriteAfterUpstreamEndedIsNotAnError: the server sent its last
// words and closed; the client's goodbye cannot be delivered, which is the
// normal end of a session, not a failure.
func TestRelayWriteAfterUpstreamEndedIsNotAnError(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: time.Second})
	}()
	server.Write([]byte("FATAL"))
	server.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("Terminate"))
	if err := <-done; err != nil {
		t.Fatalf("relay reported %v for a normal end", err)
	}
}

// TestRelayClientResetEndsSession: a client that vanishes with a reset
// (a crashed host, pgx cancelling with unread data) ends the session at
// once even though the upstream is idle, so the backend is not held.
func TestRelayClientResetEndsSession(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: time.Second})
	}()
	client.Write([]byte("query"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).SetLinger(0)
	client.Close() // RST
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("relay still holds the upstream 3 s after the client reset")
	}
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := server.Read(buf); err == nil {
		t.Fatal("upstream still open")
	}
}

// TestRelayIdleTimeout: a session with traffic outlives its idle timeout
// many times over; once quiet for the timeout it ends with ErrIdle.
func TestRelayIdleTimeout(t *testing.T) {
	// The timeout is 1 s, twenty times the chatter's pace, so a loaded
	// machine's stall does not make a busy session look idle.
	const idle = time.Second
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: idle})
	}()

	// Chatter for 2.5 idle periods, a byte each way every 50 ms.
	go io.Copy(io.Discard, server)
	go io.Copy(io.Discard, client)
	var lastWrite time.Time
	for time.Since(start) < 5*idle/2 {
		lastWrite = time.Now()
		if _, err := client.Write([]byte{1}); err != nil {
			t.Fatalf("session ended while busy, after %v: %v", time.Since(start), err)
		}
		if _, err := server.Write([]byte{2}); err != nil {
			t.Fatalf("session ended while busy, after %v: %v", time.Since(start), err)
		}
		select {
		case err := <-done:
			t.Fatalf("relay ended while busy, after %v: %v", time.Since(start), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		if err != ErrIdle {
			t.Fatalf("relay ended with %v, want ErrIdle", err)
		}
		// The relay saw the last bytes after they were written: it
		// cannot end before the timeout counted from then (less a little
		// for the clocks' grain).
		if took := time.Since(lastWrite); took < idle-50*time.Millisecond {
			t.Fatalf("ended %v after the last byte, before the %v idle timeout", took, idle)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle session was never ended")
	}
}

// sayBye is a Farewell that always speaks, naming the error's kind.
type sayBye struct{}

func (sayBye) FromUpstream([]byte) {}
func (sayBye) FromClient([]byte)   {}
func (sayBye) Message(err error) []byte {
	if errors.Is(err, io.EOF) {
		return []byte("|bye:eof")
	}
	return []byte("|bye:" + err.Error())
}

// TestRelayFarewellOnUpstreamReset: an upstream that resets mid-session
// ends the session at once, and the client reads the engine's farewell
// after what the upstream had sent, then the end of the stream.
func TestRelayFarewellOnUpstreamReset(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: time.Second, Farewell: sayBye{}})
	}()
	server.Write([]byte("rows"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	server.(*net.TCPConn).SetLinger(0)
	server.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || !strings.HasPrefix(string(got), "|bye:") || !strings.Contains(string(got), "reset") {
		t.Fatalf("client got %q, %v; want the farewell for a reset, then EOF", got, err)
	}
	if err := <-done; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("relay returned %v, want the reset", err)
	}
}

// failingWrites is an upstream whose writes fail (a dead peer found on a
// write) while its reads wait.
type failingWrites struct{ net.Conn }

func (failingWrites) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// TestRelayFarewellWhenWritingUpstreamFails: when the upstream fails under
// the client's write, the other direction (the client's only writer)
// tells the client, and the session ends.
func TestRelayFarewellWhenWritingUpstreamFails(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, _ := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, failingWrites{proxyUpstreamSide}, RelayOptions{Linger: time.Second, Farewell: sayBye{}})
	}()
	client.Write([]byte("query"))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "|bye:"+syscall.EPIPE.Error() {
		t.Fatalf("client got %q, %v; want the farewell for the failed write, then EOF", got, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("relay returned %v, want the failed write", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay still running after the upstream failed")
	}
}

// TestRelayNoFarewellToAClientThatLeft: a client that finished sending
// (Terminate, then FIN) is not told anything when the upstream then
// closes: that is the normal end.
func TestRelayNoFarewellToAClientThatLeft(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Linger: time.Second, Farewell: sayBye{}})
	}()
	client.Write([]byte("X"))
	client.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(server); err != nil || string(got) != "X" {
		t.Fatalf("server got %q, %v", got, err)
	}
	server.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(client); err != nil || len(got) != 0 {
		t.Fatalf("client got %q, %v; want a plain EOF", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}
}

// panicky is an Observer with a bug: it panics on the first chunk from one
// side.
type panicky struct {
	NopObserver
	onClient bool
}

func (p panicky) BytesFromClient(int64) {
	if p.onClient {
		panic("observer bug")
	}
}

func (p panicky) BytesFromUpstream(int64) {
	if !p.onClient {
		panic("observer bug")
	}
}

// TestRelayPanicEndsOnlyTheSession: a bug in a hook, on either direction,
// ends that session with an error and closes both sides; the process
// (this test) goes on.
func TestRelayPanicEndsOnlyTheSession(t *testing.T) {
	for _, onClient := range []bool{true, false} {
		client, proxyClientSide := netpair.TCP(t)
		proxyUpstreamSide, server := netpair.TCP(t)
		done := make(chan error, 1)
		go func() {
			done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{Observer: panicky{onClient: onClient}})
		}()
		if onClient {
			client.Write([]byte("q"))
		} else {
			server.Write([]byte("a"))
		}
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("relay returned %v, want the panic as its error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("relay still running after a panic")
		}
		for _, c := range []net.Conn{client, server} {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("a side was not closed after the panic: %v", err)
			}
		}
	}
}

// TestRelayNoFarewellWhenIdle: a session ended for being idle is closed
// without the farewell (that is for an upstream that broke off).
func TestRelayNoFarewellWhenIdle(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, _ := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: 200 * time.Millisecond, Farewell: sayBye{}})
	}()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(client); len(got) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("client got %q, %v; want the end of the stream only", got, err)
	}
	if err := <-done; err != ErrIdle {
		t.Fatalf("relay returned %v, want ErrIdle", err)
	}
}

// TestRelayTwoGoroutinesPerSession: a running session costs at most two
// goroutines (its caller's and one more), timers included.
func TestRelayTwoGoroutinesPerSession(t *testing.T) {
	const sessions = 20
	before := runtime.NumGoroutine()
	var clients []net.Conn
	done := make(chan error, sessions)
	for range sessions {
		client, proxyClientSide := netpair.TCP(t)
		proxyUpstreamSide, server := netpair.TCP(t)
		clients = append(clients, client)
		go func() {
			done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
		}()
		// One round trip, so that the session is running.
		client.Write([]byte("q"))
		io.ReadFull(server, make([]byte, 1))
		server.Write([]byte("a"))
		io.ReadFull(client, make([]byte, 1))
	}
	// netpair.TCP's accept goroutines end just after handing over their
	// connection, so one may still be counted for a moment: look again
	// for up to a second before calling it a goroutine of the relay.
	n := runtime.NumGoroutine() - before
	for deadline := time.Now().Add(time.Second); n > 2*sessions && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine() - before
	}
	if n > 2*sessions {
		t.Errorf("%d goroutines for %d sessions, want at most %d", n, sessions, 2*sessions)
	}
	for _, c := range clients {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	for range sessions {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a session outlived its client's reset")
		}
	}
}

// TestRelayNoAllocationPerChunk: relaying a chunk each way, with every
// hook the engines set, allocates nothing (a variable whose address
// escapes in the copy loop would cost one allocation per chunk).
func TestRelayNoAllocationPerChunk(t *testing.T) {
	client, proxyClientSide := netpair.TCP(t)
	proxyUpstreamSide, server := netpair.TCP(t)
	done := make(chan error, 1)
	go func() {
		done <- relayErr(context.Background(), proxyClientSide, proxyUpstreamSide, RelayOptions{IdleTimeout: time.Hour, Observer: NopObserver{}, Farewell: sayBye{}})
	}()
	req, buf := []byte("query"), make([]byte, 5)
	roundTrip := func() {
		if _, err := client.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip() // the session is running
	// Under -race the pool's dropped buffers cost 0.5 allocations per
	// round trip on average (two Puts, a quarter dropped); an escape in
	// the copy loop would add at least 2 (one per chunk).
	limit := 0.5
	if raceEnabled {
		limit = 1.25
	}
	if n := testing.AllocsPerRun(200, roundTrip); n >= limit {
		t.Errorf("%.2f allocations per round trip (two chunks through the relay), want 0 (below %.2f with -race)", n, limit)
	}
	client.Close()
	server.Close()
	<-done
}
