package proxy

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// gateHandler logs in the way the engines do, as far as the handshake cap
// is concerned: one byte is the client's first packet; after it the
// login waits for the test to let it relay.
type gateHandler struct {
	s        Settings
	relay    chan struct{} // closed: logins past their first packet start relaying
	ended    chan string   // per connection: "evicted: why", "relaying", or the read error
	refusals chan Refusal  // RefuseConn's
	hold     chan struct{} // when set, RefuseConn waits on it
	admitted chan *Login   // each login, once begun
}

func newGateHandler() *gateHandler {
	return &gateHandler{
		s:        Settings{HandshakeTimeout: 20 * time.Second, FirstPacketTimeout: 20 * time.Second, Observer: NopObserver{}},
		relay:    make(chan struct{}),
		ended:    make(chan string, 100),
		refusals: make(chan Refusal, 200),
		admitted: make(chan *Login, 100),
	}
}

func (h *gateHandler) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	l := h.s.BeginLogin(ctx, c)
	defer l.End()
	h.admitted <- l
	if _, err := c.Read(make([]byte, 1)); err != nil {
		if why := l.Evicted(); why != nil {
			h.ended <- "evicted: " + why.Text()
			return
		}
		h.ended <- err.Error()
		return
	}
	l.FirstPacket()
	<-h.relay
	l.Relaying(c, c)
	h.ended <- "relaying"
	<-ctx.Done()
}

func (h *gateHandler) RefuseConn(_ context.Context, c net.Conn, r Refusal) {
	defer c.Close()
	if h.hold != nil && !r.Drop {
		<-h.hold
	}
	h.refusals <- r
}

func startGateServer(t *testing.T, h Handler, max int, grace time.Duration) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, nil)
	s.LimitHandshakes(max, grace)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, c2 := context.WithTimeout(context.Background(), time.Second)
		defer c2()
		s.Shutdown(sctx)
	})
	return s, ln.Addr().String()
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServerHandshakeCapCountsAtAccept: connections are counted the moment
// they are accepted, before a byte is read. Over the cap a newcomer is
// refused while the holders are young, takes the place of the oldest
// silent one once it has been silent for the grace period, and is refused
// again when every holder has sent its first packet. A login that relays
// frees its place.
func TestServerHandshakeCapCountsAtAccept(t *testing.T) {
	const grace = time.Second // long enough that the first refusal is not an eviction on a loaded machine
	h := newGateHandler()
	s, addr := startGateServer(t, h, 2, grace)

	silent1 := dialT(t, addr)
	<-h.admitted
	silent2 := dialT(t, addr)
	<-h.admitted
	if got := s.Handshakes().Held(); got != 2 {
		t.Fatalf("held %d with two silent connections, want 2 (counted at accept)", got)
	}
	dialT(t, addr)
	select {
	case r := <-h.refusals:
		if r.Drop || !strings.Contains(r.Failure.Text(), "--max-handshakes") || !strings.Contains(r.Failure.Text(), "limit of 2") {
			t.Fatalf("refusal %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a newcomer over the cap of young holders was not refused")
	}

	time.Sleep(grace)
	real := dialT(t, addr)
	<-h.admitted
	select {
	case end := <-h.ended:
		if !strings.HasPrefix(end, "evicted: ") || !strings.Contains(end, "--max-handshakes") {
			t.Fatalf("the oldest silent connection ended with %q, want an eviction that names the fix", end)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection was evicted for the newcomer")
	}
	// The evicted one was the oldest: its socket is closed by its handler.
	silent1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent1.Read(make([]byte, 1)); err == nil {
		t.Fatal("the oldest silent connection is still open")
	}
	if got := s.Handshakes().Held(); got != 2 {
		t.Fatalf("held %d after the eviction, want 2", got)
	}

	// Both holders speak: nobody is evictable, however old.
	real.Write([]byte{1})
	silent2.Write([]byte{1})
	time.Sleep(grace + 100*time.Millisecond)
	dialT(t, addr)
	select {
	case <-h.refusals:
	case <-time.After(5 * time.Second):
		t.Fatal("a newcomer evicted a login that had sent its first packet")
	}
	if ev, ref := s.Handshakes().Counts(); ev != 1 || ref != 2 {
		t.Fatalf("counts evicted %d refused %d, want 1 and 2", ev, ref)
	}

	// Relaying frees the places.
	close(h.relay)
	for range 2 {
		if end := <-h.ended; end != "relaying" {
			t.Fatalf("login ended %q", end)
		}
	}
	waitUntil(t, func() bool { return s.Handshakes().Held() == 0 })
	dialT(t, addr)
	<-h.admitted
}

// TestServerBoundsRefusalsInFlight: while maxRefusing refusals are still
// talking to their clients, further newcomers are dropped at once rather
// than adding goroutines.
func TestServerBoundsRefusalsInFlight(t *testing.T) {
	h := newGateHandler()
	h.hold = make(chan struct{})
	s, addr := startGateServer(t, h, 1, time.Hour)
	dialT(t, addr)
	<-h.admitted
	for range maxRefusing {
		dialT(t, addr)
	}
	waitUntil(t, func() bool { return len(s.refusing) == maxRefusing })
	dialT(t, addr)
	select {
	case r := <-h.refusals:
		if !r.Drop {
			t.Fatalf("refusal past the bound: %+v, want Drop", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a newcomer past the refusal bound was not dropped")
	}
	close(h.hold)
	for range maxRefusing {
		if r := <-h.refusals; r.Drop {
			t.Fatal("a refusal within the bound was dropped")
		}
	}
	waitUntil(t, func() bool { return len(s.refusing) == 0 })
}

// TestLoginFirstPacketTimeout: a client that sends nothing is cut at the
// first-packet timeout, well before the handshake timeout; once it has
// spoken, the handshake timeout applies.
func TestLoginFirstPacketTimeout(t *testing.T) {
	h := newGateHandler()
	h.s.FirstPacketTimeout = 200 * time.Millisecond
	_, addr := startGateServer(t, h, 10, time.Hour)
	start := time.Now()
	dialT(t, addr)
	<-h.admitted
	select {
	case end := <-h.ended:
		if !strings.Contains(end, "timeout") {
			t.Fatalf("silent client ended with %q, want a timeout", end)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("cut after %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent client outlived the first-packet timeout")
	}
}

// TestLoginDrainCutSurvivesFirstPacket: the drain's cut of reads is not
// undone when the first packet arrives just after it.
func TestLoginDrainCutSurvivesFirstPacket(t *testing.T) {
	a, b := netpair.TCP(t)
	drain, startDrain := context.WithCancel(context.Background())
	ctx := context.WithValue(context.Background(), drainKey{}, drain)
	s := Settings{HandshakeTimeout: 10 * time.Second, FirstPacketTimeout: 10 * time.Second, Observer: NopObserver{}}
	l := s.BeginLogin(ctx, b)
	defer l.End()
	startDrain()
	waitUntil(t, l.reads.Happened)
	l.FirstPacket()
	a.Write([]byte("x"))
	b.SetWriteDeadline(time.Time{})
	if _, err := b.Read(make([]byte, 1)); !IsTimeout(err) {
		t.Fatalf("read after the drain cut and FirstPacket: %v, want a timeout", err)
	}
}
