package proxy

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// watchedConn is an upstream TCP connection that notices a dead network
// path while data is in flight: after a write that no read has followed
// yet, a timer looks at the socket's TCP state every checkEvery, and when
// the peer has acknowledged nothing for the timeout although data (or a
// zero-window probe) waits for its acknowledgment, the connection is
// declared dead. Every read and write then fails with ETIMEDOUT, which the
// engines explain to the client as a dead path (LostUpstream).
//
// A live peer acknowledges within a round trip even while it works on a
// long query, and acknowledges the zero-window probes of a sender it is
// not reading from, so neither a slow query nor a server that stopped
// reading (a COPY behind a lock) is ever taken for dead. Idle sessions
// cost nothing: the timer is armed by a write and not re-armed once a read
// has followed it.
//
// It wraps the TCP connection rather than embedding it, so that no
// method of the TCPConn (ReadFrom, WriteTo, net.Buffers' writev) can move
// bytes past the watch; its times are monotonic offsets from born, so a
// wall clock stepped back cannot switch the watch off.
type watchedConn struct {
	tc         *net.TCPConn
	raw        *rawSock // tc's reads and writes without the scheduler's syscall path; nil: tc's own
	born       time.Time
	timeout    time.Duration
	checkEvery time.Duration
	state      func(*net.TCPConn) (outstanding bool, sinceAck time.Duration, err error) // tcpState; tests replace it

	lastWrite, lastRead atomic.Int64 // nanoseconds since born
	armed               atomic.Bool
	dead                atomic.Bool

	mu     sync.Mutex
	timer  *time.Timer
	closed bool
	// The current run of checks that found something unacknowledged with
	// no acknowledgment in between: when it began, and when the peer's
	// last acknowledgment was then. Only check touches them.
	streakStart, streakAck time.Time
}

func newWatchedConn(c *net.TCPConn, timeout time.Duration) *watchedConn {
	return &watchedConn{tc: c, raw: newRawSock(c), born: time.Now(), timeout: timeout, checkEvery: min(max(timeout/4, 250*time.Millisecond), 5*time.Second), state: tcpState}
}

// errDeadPath is what reads and writes return once the path is dead. It
// wraps ETIMEDOUT, as the kernel's own give-up would.
func (c *watchedConn) errDeadPath(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.tc.LocalAddr(), Addr: c.tc.RemoteAddr(),
		Err: os.NewSyscallError("no acknowledgment from the upstream for "+c.timeout.String(), syscall.ETIMEDOUT)}
}

func (c *watchedConn) Read(b []byte) (int, error) {
	if c.dead.Load() {
		return 0, c.errDeadPath("read")
	}
	n, err := c.read(b)
	if n > 0 {
		c.lastRead.Store(int64(time.Since(c.born)))
	}
	if err != nil && c.dead.Load() {
		return n, c.errDeadPath("read")
	}
	return n, err
}

func (c *watchedConn) Write(b []byte) (int, error) {
	if c.dead.Load() {
		return 0, c.errDeadPath("write")
	}
	c.lastWrite.Store(int64(time.Since(c.born)))
	c.arm()
	n, err := c.write(b)
	if err != nil && c.dead.Load() {
		return n, c.errDeadPath("write")
	}
	return n, err
}

// read and write move bytes on the socket: raw when they can.
func (c *watchedConn) read(b []byte) (int, error) {
	if c.raw != nil {
		return c.raw.Read(b)
	}
	return c.tc.Read(b)
}

func (c *watchedConn) write(b []byte) (int, error) {
	if c.raw != nil {
		return c.raw.Write(b)
	}
	return c.tc.Write(b)
}

// The rest of net.Conn, and the half-close the relay uses.
func (c *watchedConn) LocalAddr() net.Addr                { return c.tc.LocalAddr() }
func (c *watchedConn) RemoteAddr() net.Addr               { return c.tc.RemoteAddr() }
func (c *watchedConn) SetDeadline(t time.Time) error      { return c.tc.SetDeadline(t) }
func (c *watchedConn) SetReadDeadline(t time.Time) error  { return c.tc.SetReadDeadline(t) }
func (c *watchedConn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }
func (c *watchedConn) CloseWrite() error                  { return c.tc.CloseWrite() }

func (c *watchedConn) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return c.tc.Close()
}

// arm starts the checks unless they run already.
func (c *watchedConn) arm() {
	if !c.armed.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.checkEvery, c.check)
	} else {
		c.timer.Reset(c.checkEvery)
	}
}

// check runs on the timer: it stops when the peer has answered since the
// last write, declares the path dead when the socket says so, and looks
// again later otherwise.
func (c *watchedConn) check() {
	if c.lastRead.Load() >= c.lastWrite.Load() {
		c.armed.Store(false)
		// A write may have come between the load and the store: it saw
		// armed set and did not arm; look once more.
		if c.lastRead.Load() < c.lastWrite.Load() {
			c.arm()
		}
		return
	}
	outstanding, sinceAck, err := c.state(c.tc)
	if err != nil {
		c.armed.Store(false) // closed under us
		return
	}
	if c.deadNow(time.Now(), outstanding, sinceAck) {
		c.dead.Store(true)
		// Wake any read or write blocked on the socket; they see dead.
		c.tc.SetDeadline(time.Unix(1, 0))
		c.armed.Store(false)
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(c.checkEvery)
	}
	c.mu.Unlock()
}

// deadNow decides from one look at the socket. Dead means: something waits
// for the peer's acknowledgment, none has come for the timeout, and checks
// have found it so, with no acknowledgment in between, for half the
// timeout at least. The last part spares a live peer whose receive window
// is closed: the kernel probes it at growing intervals (up to two minutes
// apart), so the time since its last acknowledgment can exceed the
// timeout, but each probe is answered within a round trip (Linux
// rate-limits those answers to one per half second), so it is never seen
// unanswered for long.
func (c *watchedConn) deadNow(now time.Time, outstanding bool, sinceAck time.Duration) bool {
	if !outstanding {
		c.streakStart = time.Time{}
		return false
	}
	ackAt := now.Add(-sinceAck)
	if c.streakStart.IsZero() || ackAt.Sub(c.streakAck) > 100*time.Millisecond {
		c.streakStart, c.streakAck = now, ackAt
	}
	return sinceAck >= c.timeout && now.Sub(c.streakStart) >= c.timeout/2
}
