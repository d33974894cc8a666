package localsrv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortsDistinctAndBindable checks the ports differ from one another
// and that each can be bound once FreePorts has let go of it.
func TestFreePortsDistinctAndBindable(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 5 {
		t.Fatalf("got %d ports, want 5", len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d is zero or repeated", ports, p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d still held after FreePorts returned: %v", p, err)
		}
		l.Close()
	}
}
