package emulator

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// canStopListening: Linux stops a listening socket with shutdown(SHUT_RD)
// and lets listen(2) start it again, keeping its port when it was bound
// to an explicit one.
const canStopListening = true

// listenTCP listens on addr with the port bound explicitly, even for
// port 0: a socket bound to port 0 gives its port back when it stops
// listening (see stopListening), so a free port is found first and then
// bound by number. SO_REUSEPORT lets the second socket bind while the
// first still holds the port, so no other socket can take it between.
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return net.Listen("tcp", addr)
	}
	first, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer first.Close()
	_, port, _ = net.SplitHostPort(first.Addr().String())
	return lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, port))
}

// stopListening makes ln refuse connections (as a closed port) while
// keeping its socket and port; a blocked Accept fails.
func stopListening(ln net.Listener) error {
	return control(ln, func(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_RD) })
}

// startListening makes ln listen again after stopListening.
func startListening(ln net.Listener) error {
	return control(ln, func(fd int) error { return syscall.Listen(fd, syscall.SOMAXCONN) })
}

func control(ln net.Listener, f func(fd int) error) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return errors.New("not a TCP listener")
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
