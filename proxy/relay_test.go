package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRelayBothWaysWithHalfClose: the client sends a request and closes
// its write side; the server still answers in full; then both close.
func TestRelayBothWaysWithHalfClose(t *testing.T) {
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	var stats Stats
	done := make(chan error, 1)
	go func() { done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &stats, time.Second) }()

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
	if stats.FromClient.Load() != int64(len(req)) || stats.FromUpstream.Load() != int64(len(answer)) {
		t.Fatalf("stats %d/%d", stats.FromClient.Load(), stats.FromUpstream.Load())
	}
}

// TestRelayLingerEnds: after the upstream closes, a client that stays
// silent is closed after the linger time, not kept forever.
func TestRelayLingerEnds(t *testing.T) {
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{}, 200*time.Millisecond)
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
	_, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, _ := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Relay(ctx, proxyClientSide, proxyUpstreamSide, &Stats{}, 0) }()
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{}, 100*time.Millisecond)
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{}, time.Second) }()
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{}, time.Second) }()
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	stats := Stats{IdleTimeout: 500 * time.Millisecond}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &stats, 0) }()

	// Chatter for 4 idle periods, a byte each way every 50 ms.
	go io.Copy(io.Discard, server)
	go io.Copy(io.Discard, client)
	for time.Since(start) < 2*time.Second {
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
	quiet := time.Now()
	select {
	case err := <-done:
		if err != ErrIdle {
			t.Fatalf("relay ended with %v, want ErrIdle", err)
		}
		if took := time.Since(quiet); took < 300*time.Millisecond {
			t.Fatalf("ended %v after the last byte, before the 500ms idle timeout", took)
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{Farewell: sayBye{}}, time.Second)
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- Relay(context.Background(), proxyClientSide, failingWrites{proxyUpstreamSide}, &Stats{Farewell: sayBye{}}, time.Second)
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
	client, proxyClientSide := tcpPair(t)
	proxyUpstreamSide, server := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- Relay(context.Background(), proxyClientSide, proxyUpstreamSide, &Stats{Farewell: sayBye{}}, time.Second)
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
