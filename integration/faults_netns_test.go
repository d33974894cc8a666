package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// blackhole is a real network black hole on this machine: a forwarder to
// target that listens inside a network namespace of its own, reached over
// a veth pair. cut takes the namespace's end of the pair down; from then
// on every packet to it is dropped without an answer: no RST, no ICMP,
// and nothing the proxy sends is acknowledged, as when a route, a NAT
// entry or a whole instance vanishes. (toxiproxy cannot do this: it
// accepts and acknowledges what it then withholds, so the proxy's TCP
// stack never learns.) It needs root (CAP_NET_ADMIN) and iproute2's ip;
// without them the test fails and says so.
type blackhole struct {
	t           *testing.T
	ns, hostEnd string // namespace and the host's end of the veth pair
	nsEnd       string
	ln          net.Listener

	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

// newBlackhole builds the namespace and starts the forwarder.
func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("a real network black hole needs iproute2's ip (apt-get install iproute2)")
	}
	id := make([]byte, 3)
	rand.Read(id)
	tag := hex.EncodeToString(id)
	b := &blackhole{t: t, ns: "riap-bh-" + tag, hostEnd: "rbh" + tag + "h", nsEnd: "rbh" + tag + "n", done: make(chan struct{})}
	// A /30 of its own in 10.200-249.x.y, so that tests in other
	// processes do not collide.
	prefix := fmt.Sprintf("10.%d.%d.", 200+int(id[0])%50, id[1])
	hostIP, nsIP := prefix+fmt.Sprint(int(id[2])&^3+1), prefix+fmt.Sprint(int(id[2])&^3+2)
	t.Cleanup(b.close)
	b.ip("netns", "add", b.ns)
	b.ip("link", "add", b.hostEnd, "type", "veth", "peer", "name", b.nsEnd, "netns", b.ns)
	b.ip("addr", "add", hostIP+"/30", "dev", b.hostEnd)
	b.ip("link", "set", b.hostEnd, "up")
	b.ip("-n", b.ns, "addr", "add", nsIP+"/30", "dev", b.nsEnd)
	b.ip("-n", b.ns, "link", "set", b.nsEnd, "up")
	b.ip("-n", b.ns, "link", "set", "lo", "up")

	ln, err := listenInNetns("/run/netns/"+b.ns, nsIP+":0")
	if err != nil {
		t.Fatalf("listen in network namespace %s: %v", b.ns, err)
	}
	b.ln = ln
	go b.forward(target)
	// The path works before it is cut.
	c, err := net.DialTimeout("tcp", b.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("through the namespace %s: %v", b.ns, err)
	}
	c.Close()
	return b
}

// ip runs iproute2's ip and fails the test if it fails.
func (b *blackhole) ip(args ...string) {
	b.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		b.t.Fatalf("ip %s: %v: %s (a real black hole needs root: CAP_NET_ADMIN)", strings.Join(args, " "), err, out)
	}
}

// addr is where the proxy dials.
func (b *blackhole) addr() string { return b.ln.Addr().String() }

func (b *blackhole) forward(target string) {
	defer close(b.done)
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, up)
		b.mu.Unlock()
		go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite() }()
	}
}

// cut drops every packet to and from the namespace from now on.
func (b *blackhole) cut() { b.ip("-n", b.ns, "link", "set", b.nsEnd, "down") }

// restore lets packets through again.
func (b *blackhole) restore() { b.ip("-n", b.ns, "link", "set", b.nsEnd, "up") }

func (b *blackhole) close() {
	if b.ln != nil {
		b.ln.Close()
		<-b.done
	}
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	// Deleting the namespace deletes its end of the pair, and so the pair.
	exec.Command("ip", "netns", "del", b.ns).Run()
	exec.Command("ip", "link", "del", b.hostEnd).Run()
}
