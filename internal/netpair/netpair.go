// Package netpair gives tests the two ends of a real loopback TCP
// connection, closed when the test ends. Relay, farewell and deadline
// tests need real sockets (half-close, resets, kernel buffers), which
// net.Pipe does not have; five test files each wrote this out.
package netpair

import (
	"net"
	"testing"
)

// TCP returns the dialing end a and the accepted end b of a new loopback
// TCP connection; both are closed in t.Cleanup.
func TCP(t testing.TB) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		a.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
