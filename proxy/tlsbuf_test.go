package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTLSBuffersFound: this Go's tls.Conn has the read buffers the relay
// lets go of while a TLS upstream is idle (tlsbuf.go). When a Go release
// renames or retypes them, the relay falls back to holding a wait buffer
// per idle session and this test says so.
func TestTLSBuffersFound(t *testing.T) {
	if !tlsLayout.ok {
		t.Fatal("crypto/tls.Conn has no rawInput bytes.Buffer, input bytes.Reader and hand bytes.Buffer: idle TLS upstreams hold a wait buffer and their grown record buffer (see tlsbuf.go)")
	}
	proxySide, _ := tlsPair(t)
	if _, ok := tlsBuffersOf(proxySide.(*tls.Conn)); !ok {
		t.Fatal("tlsBuffersOf refused a connection after its handshake")
	}
}

// TestReadTLSLetsGo: a TLS source read by the relay gives back the record
// buffer a large result grew and the handshake's buffers before it waits,
// keeps a small one between answers, and delivers every byte in order
// (those still in the conn's buffers first).
func TestReadTLSLetsGo(t *testing.T) {
	proxySide, server := tlsPair(t)
	proxySide.SetDeadline(time.Now().Add(20 * time.Second))
	server.SetDeadline(time.Now().Add(20 * time.Second))
	c := newChunks(proxySide)
	defer c.release()
	if c.tb.rawInput == nil {
		t.Fatal("a TLS connection over TCP is not read by readTLS")
	}
	readAll := func(want []byte) {
		t.Helper()
		var got []byte
		for len(got) < len(want) {
			chunk, err := c.read()
			got = append(got, chunk...)
			if err != nil {
				t.Fatalf("after %d of %d bytes: %v", len(got), len(want), err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes not as sent", len(got))
		}
	}
	// A large result in full records, then several small answers sent at
	// once (several records in one segment: the later ones wait in the
	// conn's buffers, not in the socket).
	large := bytes.Repeat([]byte("0123456789abcdef"), 40<<10)
	go server.Write(large)
	readAll(large)
	if got := c.tb.rawInput.Cap(); got < relayBufSize {
		t.Fatalf("the large result left a record buffer of %d bytes; the test needs one of a full record", got)
	}
	small := []byte("a point query's answer")
	go func() {
		for range 3 {
			server.Write(small)
		}
	}()
	readAll(bytes.Repeat(small, 3))
	if got := c.tb.rawInput.Cap(); got > tlsKeep {
		t.Errorf("after waiting, a record buffer of %d bytes, want at most %d", got, tlsKeep)
	}
	if got := c.tb.hand.Cap(); got != 0 {
		t.Errorf("after waiting, the handshake buffer holds %d bytes", got)
	}
	// A read that waits for the socket (holding no buffer) gets the bytes
	// once they come.
	next := make(chan error, 1)
	go func() {
		chunk, err := c.read()
		if err == nil && string(chunk) != "x" {
			err = fmt.Errorf("read %q, want %q", chunk, "x")
		}
		next <- err
	}()
	time.Sleep(50 * time.Millisecond)
	server.Write([]byte("x"))
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	// The end of the stream is the conn's to say.
	server.Close()
	for {
		_, err := c.read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("at the end: %v, want io.EOF", err)
		}
	}
}

// TestReadTLSReportsAReset: an upstream that resets the connection,
// while the relay waits on its socket or before, is reported as a reset
// (the client is told so), not as an end: the wait must not take the
// socket's pending error away from the conn's read.
func TestReadTLSReportsAReset(t *testing.T) {
	for _, when := range []string{"while waiting", "before the read"} {
		t.Run(when, func(t *testing.T) {
			proxySide, server := tlsPair(t)
			proxySide.SetDeadline(time.Now().Add(20 * time.Second))
			c := newChunks(proxySide)
			defer c.release()
			reset := func() {
				raw := server.(*tls.Conn).NetConn().(*net.TCPConn)
				raw.SetLinger(0)
				raw.Close()
			}
			if when == "before the read" {
				reset()
				time.Sleep(50 * time.Millisecond) // the reset has arrived
			}
			got := make(chan error, 1)
			go func() {
				for {
					if _, err := c.read(); err != nil {
						got <- err
						return
					}
				}
			}()
			if when == "while waiting" {
				time.Sleep(50 * time.Millisecond) // the read waits on the socket
				reset()
			}
			if err := <-got; !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read after the upstream's reset: %v, want ECONNRESET", err)
			}
		})
	}
}
