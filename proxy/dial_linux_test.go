package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUpstreamDialerSetsTimeouts: upstream sockets carry TCP_USER_TIMEOUT
// and keepalive sized from the timeout; negative leaves both to the OS.
func TestUpstreamDialerSetsTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	opt := func(c net.Conn, level, name int) int {
		raw, err := c.(*net.TCPConn).SyscallConn()
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
	for _, tc := range []struct {
		timeout           time.Duration
		userMS, idle, ivl int
	}{
		{0, 30000, 15, 5},
		{3 * time.Second, 3000, 2, 1}, // 1.5 s rounds up to whole seconds
		{-1, 0, -1, -1},
	} {
		c, err := DialUpstream(tc.timeout)(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if got := opt(c, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); got != tc.userMS {
			t.Errorf("timeout %v: TCP_USER_TIMEOUT %d ms, want %d", tc.timeout, got, tc.userMS)
		}
		if tc.idle >= 0 {
			if got := opt(c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 1 {
				t.Errorf("timeout %v: keepalive off", tc.timeout)
			}
			if got := opt(c, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); got != tc.idle {
				t.Errorf("timeout %v: TCP_KEEPIDLE %d s, want %d", tc.timeout, got, tc.idle)
			}
			if got := opt(c, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL); got != tc.ivl {
				t.Errorf("timeout %v: TCP_KEEPINTVL %d s, want %d", tc.timeout, got, tc.ivl)
			}
		}
		c.Close()
	}
}
