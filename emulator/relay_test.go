package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// testLinger is the linger the tests' relays use.
const testLinger = 500 * time.Millisecond

// relayedSession is a relay between a client and a backend, each seen from the
// far end: what the test writes on client, the backend reads, and back.
type relayedSession struct {
	client, backend net.Conn
	done            chan struct{}
}

func startRelay(t *testing.T, ctx context.Context) *relayedSession {
	t.Helper()
	return startRelayWith(t, ctx, func(c net.Conn) net.Conn { return c })
}

// startRelayWith is startRelay with the front's end of the backend
// connection wrapped (to shape how the relay reads it).
func startRelayWith(t *testing.T, ctx context.Context, wrap func(net.Conn) net.Conn) *relayedSession {
	t.Helper()
	client, frontClient := netpair.TCP(t)
	frontBackend, backend := netpair.TCP(t)
	s := &relayedSession{client: client, backend: backend, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		relay(ctx, frontClient, wrap(frontBackend), testLinger)
	}()
	for _, c := range []net.Conn{client, backend} {
		c.SetDeadline(time.Now().Add(20 * time.Second))
	}
	return s
}

func (s *relayedSession) ended(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		t.Fatalf("the relay did not end within %s", within)
	}
}

// TestRelayClientFinishesFirst: a client that half-closes after its last
// request still gets the backend's answer; the backend sees the end, and
// once it closes the relay ends.
func TestRelayClientFinishesFirst(t *testing.T) {
	s := startRelay(t, context.Background())
	s.client.Write([]byte("last request"))
	s.client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(s.backend)
	if err != nil || string(got) != "last request" {
		t.Fatalf("backend read %q, %v; want the request, then the end", got, err)
	}
	s.backend.Write([]byte("the answer"))
	s.backend.Close()
	got, err = io.ReadAll(s.client)
	if err != nil || string(got) != "the answer" {
		t.Fatalf("client read %q, %v; want the answer, then the end", got, err)
	}
	s.ended(t, 5*time.Second)
}

// TestRelayBackendFinishesFirst: the backend's last words and its end
// reach the client; a client that then neither closes nor reads is cut
// after the linger, so a session never outlives its backend for long.
func TestRelayBackendFinishesFirst(t *testing.T) {
	s := startRelay(t, context.Background())
	s.backend.Write([]byte("FATAL goodbye"))
	s.backend.Close()
	got, err := io.ReadAll(s.client)
	if err != nil || string(got) != "FATAL goodbye" {
		t.Fatalf("client read %q, %v; want the goodbye, then the end", got, err)
	}
	start := time.Now()
	s.ended(t, testLinger+5*time.Second)
	if took := time.Since(start); took < testLinger/2 {
		t.Errorf("the relay ended %s after the backend, before the client's linger", took)
	}
}

// TestRelayBackendHalfClosedNotReading: the backend says goodbye (FIN)
// and stops reading while the client still streams (a COPY FROM STDIN
// into a server that ended the session). The relay's write to the backend
// blocks with the windows full; the session must still end.
func TestRelayBackendHalfClosedNotReading(t *testing.T) {
	s := startRelay(t, context.Background())
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := s.client.Write(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	s.backend.(*net.TCPConn).CloseWrite() // FIN; it never reads again
	s.ended(t, testLinger+15*time.Second)
}

// slowRead deschedules the relay's reads of the backend for a moment
// before each, as a loaded machine does. It has CloseWrite but not the
// TCP connection's WriteTo, which would read around the pause.
type slowRead struct{ net.Conn }

func (c slowRead) Read(b []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return c.Conn.Read(b)
}

func (c slowRead) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// TestRelayBackendFatalSurvivesAFailedWrite: the backend sends its own
// FATAL and closes (idle_session_timeout, pg_terminate_backend) just as
// the client sends a query. The relay's write of the query fails; the
// backend's FATAL, already in the relay's socket, is still what the
// client reads.
func TestRelayBackendFatalSurvivesAFailedWrite(t *testing.T) {
	s := startRelayWith(t, context.Background(), func(c net.Conn) net.Conn { return slowRead{c} })
	time.Sleep(10 * time.Millisecond) // the relay sleeps before its first read
	s.backend.Write([]byte("FATAL: terminating connection due to idle-session timeout"))
	s.backend.Close()
	for range 5 { // the client's queries: a write meets the reset
		s.client.Write([]byte("select 1"))
		time.Sleep(5 * time.Millisecond)
	}
	got, _ := io.ReadAll(s.client)
	if !strings.Contains(string(got), "idle-session timeout") {
		t.Fatalf("the backend's own FATAL never reached the client; it got %q", got)
	}
	s.ended(t, testLinger+5*time.Second)
}

// TestRelayEndsWithTheContext: cancelling the context (the front's Close)
// ends a busy session at once, both ends closed.
func TestRelayEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := startRelay(t, ctx)
	s.client.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s.backend, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	s.ended(t, 5*time.Second)
	for name, c := range map[string]net.Conn{"client": s.client, "backend": s.backend} {
		if _, err := c.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s end still open after the cut: %v", name, err)
		}
	}
}

// TestCloseCutsOpenConnections: an instance's Close returns promptly with
// a connection still in its handshake, and the connection is closed.
func TestCloseCutsOpenConnections(t *testing.T) {
	a := NewAWS(Options{})
	ca, err := NewCA("relay test CA")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := a.newInstance(ca, instanceOptions{endpoint: "db.example", port: 5432, resourceID: "db-X", kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	inst.serve(func(ctx context.Context, c net.Conn) {
		close(entered)
		io.Copy(io.Discard, c) // a handshake read that only a cut ends
	})
	c, err := net.Dial("tcp", inst.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-entered
	closed := make(chan struct{})
	go func() { inst.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a connection in its handshake")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the connection was not closed: %v", err)
	}
}
