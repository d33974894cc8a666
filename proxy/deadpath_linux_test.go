package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUpstreamKeepalive: upstream sockets carry keepalive sized from the
// timeout; negative leaves them to the OS and does not watch them.
func TestUpstreamKeepalive(t *testing.T) {
	ln := listen(t)
	for _, tc := range []struct {
		timeout   time.Duration
		idle, ivl int
	}{
		{0, 15, 5},
		{3 * time.Second, 2, 1}, // 1.5 s rounds up to whole seconds
		{-1, -1, -1},
	} {
		c, err := DialUpstream(tc.timeout)(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, watched := c.(*watchedConn)
		if watched != (tc.timeout >= 0) {
			t.Errorf("timeout %v: watched %v", tc.timeout, watched)
		}
		if tc.idle >= 0 {
			if got := sockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 1 {
				t.Errorf("timeout %v: keepalive off", tc.timeout)
			}
			if got := sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); got != tc.idle {
				t.Errorf("timeout %v: TCP_KEEPIDLE %d s, want %d", tc.timeout, got, tc.idle)
			}
			if got := sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL); got != tc.ivl {
				t.Errorf("timeout %v: TCP_KEEPINTVL %d s, want %d", tc.timeout, got, tc.ivl)
			}
		}
		if got := sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); got != 0 {
			t.Errorf("timeout %v: TCP_USER_TIMEOUT %d ms: it would cut a peer that is alive but not reading", tc.timeout, got)
		}
		c.Close()
	}
}

// TestWatchSparesAPeerThatIsNotReading is why the watch exists instead of
// TCP_USER_TIMEOUT: an upstream that is alive but not reading (a COPY
// waiting on a lock) closes its receive window; the proxy's write blocks
// for longer than the timeout, and the session must still be there when
// the upstream reads again.
func TestWatchSparesAPeerThatIsNotReading(t *testing.T) {
	ln := listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := DialUpstream(2*time.Second)(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := <-accepted
	defer server.Close()
	const size = 32 << 20 // far more than the socket buffers hold
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("the write ended while the peer was not reading: %v", err)
	case <-time.After(8 * time.Second): // four timeouts
	}
	n, err := io.Copy(io.Discard, io.LimitReader(server, size))
	if err != nil || n != size {
		t.Fatalf("the peer read %d bytes, %v", n, err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	// Answered: the watch stops.
	server.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return !c.(*watchedConn).armed.Load() })
}

// TestWatchDeclaresDeadPath: with data unacknowledged for the timeout, a
// blocked read ends with ETIMEDOUT. The socket state is faked here (a
// real black hole needs a network namespace: see the integration fault
// tests); the decision and the wake-up are what is tested.
func TestWatchDeclaresDeadPath(t *testing.T) {
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := DialUpstream(300*time.Millisecond)(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wc := c.(*watchedConn)
	lastAck := time.Now()
	wc.state = func(*net.TCPConn) (bool, time.Duration, error) { return true, time.Since(lastAck), nil }
	if _, err := c.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !isDeadPath(err) {
		t.Fatalf("read after a dead path: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("noticed after %s", took)
	}
	if _, err := c.Write([]byte("more")); !isDeadPath(err) {
		t.Fatalf("write after a dead path: %v", err)
	}
	if msg := LostUpstream(err).Text(); !strings.Contains(msg, "looks dead") {
		t.Fatalf("explained as %q", msg)
	}
}

func isDeadPath(err error) bool { return errors.Is(err, syscall.ETIMEDOUT) }

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func sockopt(t *testing.T, c net.Conn, level, name int) int {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if wc, isW := c.(*watchedConn); isW {
		tc, ok = wc.tc, true
	}
	if !ok {
		t.Fatalf("%T is not TCP", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, name) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestWatchSeesEveryWrite: no method of the wrapped TCP connection lets
// bytes past the watch (net.Buffers uses writev when the writer offers
// it; io.Copy uses ReadFrom and WriteTo).
func TestWatchSeesEveryWrite(t *testing.T) {
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := DialUpstream(time.Minute)(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wc := c.(*watchedConn)
	bufs := net.Buffers{[]byte("one"), []byte("two")}
	if _, err := bufs.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if wc.lastWrite.Load() == 0 {
		t.Fatal("net.Buffers wrote past the watch")
	}
	wc.lastWrite.Store(0)
	if _, err := io.Copy(c, strings.NewReader("three")); err != nil {
		t.Fatal(err)
	}
	if wc.lastWrite.Load() == 0 {
		t.Fatal("io.Copy wrote past the watch")
	}
}
