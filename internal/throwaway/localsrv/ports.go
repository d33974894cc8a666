package localsrv

import (
	"fmt"
	"net"
)

// FreePorts asks the kernel for n distinct unused loopback ports, holding
// every one until all are chosen so none comes back twice. As with FreePort,
// another process can take one before the caller binds it.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick %d free ports: %w", n, err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
