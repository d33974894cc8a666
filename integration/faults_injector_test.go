package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/rs/zerolog"
)

// injector is a TCP fault injector between the proxy and one upstream,
// in process: toxiproxy v2's toxic chains (latency, bandwidth, timeout,
// ...) run on every connection through it, added and removed while
// connections are open. It accepts and dials itself and hands each
// connection to toxiproxy's links (ToxicCollection.StartLink) instead of
// letting toxiproxy.Proxy do it, because two faults need the sockets,
// which toxiproxy keeps to itself:
//
//   - a reset at a chosen point (resetAfter): toxiproxy's reset_peer sends
//     an RST only when the toxic is there before the connection opens
//     (it sets SO_LINGER 0 at the link's start, on ends it requires to be
//     bare TCP connections) and fires on time, not on bytes, so it cannot
//     hit "the middle of a result";
//   - a half-close from the server side (halfClose): toxiproxy closes both
//     ways when one side ends, so a FIN never passes through as a FIN.
//
// For the same reason a FIN from either end is passed on as a FIN, and a
// connection is closed once both ways have ended.
type injector struct {
	ln     net.Listener
	target string
	server *toxiproxy.ApiServer
	px     *toxiproxy.Proxy

	mu    sync.Mutex
	links map[*faultLink]bool
	// resetAt, when positive, is the byte count toward the proxy (over
	// all links) at which a link is reset; resets counts those done.
	resetAt  int64
	down     atomic.Int64 // bytes passed toward the proxy, all links
	up       atomic.Int64 // bytes passed toward the upstream, all links
	accepted atomic.Int64
	resets   atomic.Int64
	done     chan struct{}
}

// faultLink is one connection through the injector: proxy side and
// upstream side.
type faultLink struct {
	in       *injector
	client   *net.TCPConn // the proxy's connection to us
	upstream *net.TCPConn // ours to the target
	ends     atomic.Int32 // directions that have ended
	halfShut atomic.Bool  // the "server" sent its FIN: drop what follows
}

// newInjector listens on loopback and forwards to target until the test
// ends.
func newInjector(t *testing.T, name, target string) *injector {
	t.Helper()
	// Some toxics (bandwidth) log through zerolog's global logger, at
	// trace level, to stderr.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	nop := zerolog.Nop()
	px := toxiproxy.NewProxy(server, name, ln.Addr().String(), target)
	px.Logger = &nop
	in := &injector{ln: ln, target: target, server: server, px: px, links: map[*faultLink]bool{}, done: make(chan struct{})}
	go in.accept()
	t.Cleanup(in.close)
	return in
}

// addr is where the proxy dials (its dial_address).
func (in *injector) addr() string { return in.ln.Addr().String() }

func (in *injector) accept() {
	defer close(in.done)
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", in.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		in.accepted.Add(1)
		l := &faultLink{in: in, client: c.(*net.TCPConn), upstream: up.(*net.TCPConn)}
		in.mu.Lock()
		in.links[l] = true
		in.mu.Unlock()
		id := c.RemoteAddr().String()
		in.px.Toxics.StartLink(in.server, id+"upstream", l.client, &linkEnd{l: l, c: l.upstream}, stream.Upstream)
		in.px.Toxics.StartLink(in.server, id+"downstream", l.upstream, &linkEnd{l: l, c: l.client, down: true}, stream.Downstream)
	}
}

// linkEnd is where one direction of a link writes: the socket, with the
// injector's own faults applied.
type linkEnd struct {
	l    *faultLink
	c    *net.TCPConn
	down bool // toward the proxy
}

func (e *linkEnd) Write(p []byte) (int, error) {
	if !e.down {
		e.l.in.up.Add(int64(len(p)))
		return e.c.Write(p)
	}
	if e.l.halfShut.Load() {
		return len(p), nil // the server said it is done sending
	}
	in := e.l.in
	total := in.down.Add(int64(len(p)))
	in.mu.Lock()
	at := in.resetAt
	if at > 0 && total >= at {
		in.resetAt = 0
	}
	in.mu.Unlock()
	if at > 0 && total >= at {
		// Pass on what comes before the reset point, then reset.
		keep := int64(len(p)) - (total - at)
		if keep > 0 {
			e.c.Write(p[:keep])
		}
		// Counted before the reset: the client's error follows the reset
		// at once, and the test reads the count as soon as it has it.
		in.resets.Add(1)
		e.l.reset()
		return len(p), net.ErrClosed
	}
	return e.c.Write(p)
}

// Close ends this direction with a FIN; once both have ended the link's
// sockets are closed.
func (e *linkEnd) Close() error {
	e.c.CloseWrite()
	e.l.ended()
	return nil
}

func (l *faultLink) ended() {
	if l.ends.Add(1) == 2 {
		l.close()
	}
}

func (l *faultLink) close() {
	l.client.Close()
	l.upstream.Close()
	l.in.mu.Lock()
	delete(l.in.links, l)
	l.in.mu.Unlock()
}

// reset ends both sockets with an RST, the way a crashed peer or a
// stateful firewall that lost the connection does.
func (l *faultLink) reset() {
	l.client.SetLinger(0)
	l.upstream.SetLinger(0)
	l.close()
}

// resetAfter arms a reset of the link that carries the nth next byte
// toward the proxy (counted over all links).
func (in *injector) resetAfter(n int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.resetAt = in.down.Load() + max(n, 1)
}

// resetAll resets every open link now.
func (in *injector) resetAll() {
	for _, l := range in.open() {
		in.resets.Add(1)
		l.reset()
	}
}

// halfClose makes every open link look like a server that closed its
// side: a FIN goes to the proxy and nothing more comes from the server,
// while what the proxy sends still reaches it.
func (in *injector) halfClose() int {
	links := in.open()
	for _, l := range links {
		l.halfShut.Store(true)
		l.client.CloseWrite()
	}
	return len(links)
}

func (in *injector) open() []*faultLink {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*faultLink
	for l := range in.links {
		out = append(out, l)
	}
	return out
}

// toxic adds a toxiproxy toxic (type as in toxiproxy's README, stream
// "upstream" toward the database or "downstream" toward the proxy) to
// every open and future connection until the returned func, or the end
// of t, removes it.
func (in *injector) toxic(t *testing.T, name, typ, dir string, attrs map[string]any) (remove func()) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": dir, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.px.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		t.Fatalf("add toxic %s: %v", name, err)
	}
	var once sync.Once
	remove = func() {
		once.Do(func() {
			if err := in.px.Toxics.RemoveToxic(context.Background(), name); err != nil {
				t.Errorf("remove toxic %s: %v", name, err)
			}
		})
	}
	t.Cleanup(remove)
	return remove
}

// bothWays adds the same toxic to both streams; the func removes both.
func (in *injector) bothWays(t *testing.T, name, typ string, attrs map[string]any) (remove func()) {
	up := in.toxic(t, name+"_up", typ, "upstream", attrs)
	down := in.toxic(t, name+"_down", typ, "downstream", attrs)
	return func() { up(); down() }
}

func (in *injector) close() {
	in.ln.Close()
	<-in.done
	in.px.Toxics.ResetToxics(context.Background())
	for _, l := range in.open() {
		l.close()
	}
}
