package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// heldForwarder forwards to target, but holds every connection it
// accepts, sending nothing either way, until release: an upstream that
// is slow to greet (black-holed, overloaded) for as long as a test wants.
type heldForwarder struct {
	ln       net.Listener
	release  chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	accepted atomic.Int32 // connections accepted so far
}

func newHeldForwarder(t *testing.T, target string) *heldForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &heldForwarder{ln: ln, release: make(chan struct{})}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			f.wg.Go(func() {
				defer c.Close()
				<-f.release
				up, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			})
		}
	})
	t.Cleanup(func() { f.open(); ln.Close(); f.wg.Wait() })
	return f
}

func (f *heldForwarder) addr() string { return f.ln.Addr().String() }
func (f *heldForwarder) open()        { f.once.Do(func() { close(f.release) }) }

// mysqlPing logs in with go-sql-driver/mysql and returns its error.
func mysqlPing(t *testing.T, port string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return mysqlDB(t, port, iamUser).PingContext(ctx)
}

// TestMySQLClockStartsAtTheGreeting: the time a MySQL client has to
// answer (--first-packet-timeout) runs from the greeting, not from
// accept: the proxy's own wait for a place among the unanswered greetings
// and for the upstream's greeting is not the client's. With an upstream
// that takes longer than the first-packet timeout to greet, a client
// waiting for a place is told that the upstream is slow (no client was
// silent), and the client whose dial was held still logs in once the
// greeting comes. Budget: about 5 s.
func TestMySQLClockStartsAtTheGreeting(t *testing.T) {
	w.enter(t)
	held := newHeldForwarder(t, w.my.Addr())
	port := startMySQLProxy(t, func(c *launch.Config) {
		c.DialAddress = held.addr()
		c.MaxUnanswered = 1
		c.FirstPacketTimeout = config.Duration(1500 * time.Millisecond)
	})
	first := make(chan error, 1)
	go func() { first <- mysqlPing(t, port) }()
	// The first holds the one place, in its dial.
	waitFor(t, 20*time.Second, func() bool { return held.accepted.Load() == 1 })

	// The second waits for the place until its first-packet time is up.
	err := mysqlPing(t, port)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || !strings.Contains(me.Message, "is slow to answer") || !strings.Contains(me.Message, "still waiting for the server's greeting") ||
		strings.Contains(me.Message, "without answering") || !strings.Contains(me.Message, "Fix: check that the DB is reachable") {
		t.Fatalf("a client waiting behind a slow upstream was told %v, want the slow upstream named", err)
	}

	// The greeting comes after the first-packet timeout has passed since
	// the first client connected: it still has its full time to answer.
	time.Sleep(time.Second)
	held.open()
	if err := <-first; err != nil {
		t.Fatalf("the client greeted late by a slow upstream: %v, want a login", err)
	}
}

// TestMySQLWaitingClientIsNotEvicted: the cap on connections logging in
// (--max-handshakes) evicts clients silent past its grace to make room,
// but a MySQL client that is waiting for the proxy (for the upstream's
// greeting) is not silent: it is not evicted, and the newcomer is refused
// instead. Budget: about 5 s.
func TestMySQLWaitingClientIsNotEvicted(t *testing.T) {
	w.enter(t)
	held := newHeldForwarder(t, w.my.Addr())
	port := startMySQLProxy(t, func(c *launch.Config) {
		c.DialAddress = held.addr()
		c.MaxHandshakes = 1
	})
	first := make(chan error, 1)
	go func() { first <- mysqlPing(t, port) }()
	waitFor(t, 20*time.Second, func() bool { return held.accepted.Load() == 1 })
	time.Sleep(2500 * time.Millisecond) // past the cap's eviction grace (2 s)

	err := mysqlPing(t, port)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != mywire.ErConCount || !strings.Contains(me.Message, "--max-handshakes") {
		t.Fatalf("the newcomer over a full cap: %v, want a refusal", err)
	}
	held.open()
	if err := <-first; err != nil {
		t.Fatalf("the client waiting for its greeting: %v, want a login (it was not silent)", err)
	}
}

// TestMySQLSilentClientIsTold: a client that does not answer the greeting
// within the first-packet timeout is sent an ERR (1043, 08S01) naming the
// cause and the fix, no sooner than the timeout after its greeting.
// Budget: about 3 s.
func TestMySQLSilentClientIsTold(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t, func(c *launch.Config) { c.FirstPacketTimeout = config.Duration(time.Second) })
	// Timed from before the dial: the proxy's clock starts when it sends
	// the greeting, always later, so a late-scheduled reader here cannot
	// make a correct ERR look early.
	dialed := time.Now()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, _, err := mywire.ReadPacket(c, mywire.GreetingLimit); err != nil {
		t.Fatalf("no greeting: %v", err)
	}
	_, p, err := mywire.ReadPacket(c, mywire.GreetingLimit)
	took := time.Since(dialed)
	if err != nil {
		t.Fatalf("a silent client got no ERR: %v", err)
	}
	e := mywire.ParseErr(p)
	if e == nil || e.Code != mywire.ErHandshake || e.State != "08S01" ||
		!strings.Contains(e.Message, "did not answer the server's greeting within 1s") || !strings.Contains(e.Message, "Fix: ") ||
		!strings.Contains(e.Message, "--first-packet-timeout") {
		t.Fatalf("a silent client was sent %q (%+v)", p, e)
	}
	if took < time.Second {
		t.Errorf("told %s after the dial, before its first-packet timeout of 1s", took)
	}
}
