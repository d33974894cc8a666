package localsrv

import (
	"fmt"
	"net"
)

// FreePort asks the kernel for an unused loopback port. It can be taken
// again before the server binds it; callers retry with another port when
// the server says so.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	return port, nil
}
