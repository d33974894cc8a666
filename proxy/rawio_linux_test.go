//go:build linux && !386

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// rawPair is a loopback TCP connection with a rawSock on its first end.
func rawPair(t *testing.T) (*rawSock, net.Conn, net.Conn) {
	t.Helper()
	a, b := netpair.TCP(t)
	r := newRawSock(a)
	if r == nil {
		t.Fatal("no raw socket for a TCP connection")
	}
	return r, a, b
}

// TestRawSockMovesEveryByte: 4 MiB each way at once, more than the socket
// buffers hold, so writes wait for room (EAGAIN, then the poller) and
// reads for bytes; every byte arrives in order.
func TestRawSockMovesEveryByte(t *testing.T) {
	r, _, b := rawPair(t)
	out := make([]byte, 4<<20)
	for i := range out {
		out[i] = byte(i * 7)
	}
	errc := make(chan error, 3)
	go func() { // raw writes out; the peer reads it slowly at first
		n, err := r.Write(out)
		if err == nil && n != len(out) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, len(out))
	go func() {
		time.Sleep(100 * time.Millisecond) // let the raw write fill the buffers
		_, err := io.ReadFull(b, got)
		errc <- err
	}()
	back := make([]byte, len(out))
	go func() { // the peer writes out; raw reads it in small pieces
		_, err := b.Write(out)
		errc <- err
	}()
	buf := make([]byte, 1000)
	for read := 0; read < len(back); {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("raw read after %d bytes: %v", read, err)
		}
		read += copy(back[read:], buf[:n])
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, out) || !bytes.Equal(back, out) {
		t.Fatal("bytes differ")
	}
}

// TestRawSockErrorsAsNetConn: the ends of a read and a write read as
// net.Conn's do, since the relay's rules are written against those: EOF,
// a deadline (a timeout, os.ErrDeadlineExceeded), a close under a waiting
// read (net.ErrClosed), a reset peer (a syscall error, not EOF).
func TestRawSockErrorsAsNetConn(t *testing.T) {
	t.Run("eof", func(t *testing.T) {
		r, _, b := rawPair(t)
		b.Write([]byte("last"))
		b.(*net.TCPConn).CloseWrite()
		buf := make([]byte, 16)
		n, err := r.Read(buf)
		if err != nil || string(buf[:n]) != "last" {
			t.Fatalf("read %q, %v; want last", buf[:n], err)
		}
		if _, err := r.Read(buf); err != io.EOF {
			t.Fatalf("read at the end: %v, want io.EOF", err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		r, a, _ := rawPair(t)
		a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := r.Read(make([]byte, 16))
		if !IsTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read past its deadline: %#v, want a read OpError", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		r, a, _ := rawPair(t)
		a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := r.Write(make([]byte, 64<<20)) // the peer reads nothing
		if !IsTimeout(err) || n >= 64<<20 {
			t.Fatalf("write past its deadline: %d, %v", n, err)
		}
	})
	t.Run("closed while waiting", func(t *testing.T) {
		r, a, _ := rawPair(t)
		time.AfterFunc(50*time.Millisecond, func() { a.Close() })
		if _, err := r.Read(make([]byte, 16)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read of a closed connection: %v, want net.ErrClosed", err)
		}
		if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write to a closed connection: %v, want net.ErrClosed", err)
		}
	})
	t.Run("close write", func(t *testing.T) {
		r, a, b := rawPair(t)
		r.Write([]byte("bye"))
		if err := r.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "bye" {
			t.Fatalf("the peer read %q, %v; want bye and the end", got, err)
		}
		b.Write([]byte("still"))
		buf := make([]byte, 16)
		if n, err := r.Read(buf); err != nil || string(buf[:n]) != "still" {
			t.Fatalf("read after the half-close %q, %v; want still", buf[:n], err)
		}
		a.Close()
		if err := r.CloseWrite(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("close write of a closed connection: %v, want net.ErrClosed", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		r, _, b := rawPair(t)
		b.(*net.TCPConn).SetLinger(0)
		b.Close() // RST
		time.Sleep(50 * time.Millisecond)
		_, err := r.Read(make([]byte, 16))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read after a reset: %v, want ECONNRESET", err)
		}
	})
}

// TestRawSockAllocatesNothing: a read and a write per chunk cost no
// allocation (the callbacks are bound once).
func TestRawSockAllocatesNothing(t *testing.T) {
	r, _, b := rawPair(t)
	msg, buf := []byte("ping"), make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := r.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per round trip, want 0", allocs)
	}
}

// TestRawSockConcurrentWritesStayWhole: writes from several goroutines at
// once each arrive whole, never interleaved, as net.Conn's do (the relay
// writes the client from one goroutine, but a TLS upstream's alerts and a
// login's background reader share their connection).
func TestRawSockConcurrentWritesStayWhole(t *testing.T) {
	r, _, b := rawPair(t)
	const writers, each, size = 4, 50, 10 << 10
	errc := make(chan error, writers)
	for w := range writers {
		go func() {
			msg := bytes.Repeat([]byte{byte('a' + w)}, size)
			for range each {
				if _, err := r.Write(msg); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	block := make([]byte, size)
	for i := range writers * each {
		if _, err := io.ReadFull(b, block); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if bytes.Count(block, block[:1]) != size {
			t.Fatalf("block %d mixes two writes", i)
		}
	}
	for range writers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
