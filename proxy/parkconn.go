package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Tracker follows a session's bytes for session reuse (see Pool): it
// hears each chunk either way and says whether the client left the
// session clean. An engine writes one per protocol.
type Tracker interface {
	// FromClient hears a chunk of the client's before it goes upstream
	// and says how many of its bytes to send: all of them, or all but
	// the client's clean quit at its end (quit), which is held back so
	// that the server keeps the session.
	FromClient(p []byte) (forward int, quit bool)
	// FromUpstream hears a chunk of the server's as it is read.
	FromUpstream(p []byte)
	// Clean says whether the client quit cleanly, leaving the session
	// fit to be reset for another client.
	Clean() bool
}

// ParkConn is the upstream connection as the relay sees it when sessions
// are reused: it feeds a Tracker and, once the client has quit cleanly,
// keeps the real connection open while the relay ends as if the server
// had closed it. The relay needs no change: its writes of the client's
// quit are held back, its read of the upstream ends with io.EOF, and its
// half-close and close leave the connection to whoever parks it (Raw).
// Whatever is not a clean quit reaches the real connection as before.
type ParkConn struct {
	net.Conn
	t Tracker

	mu     sync.Mutex
	quit   bool // the clean quit was held back: the relay is to end
	ended  bool // the upstream ended or failed under the relay, or a write failed
	closed bool // the relay closed it after a clean quit
}

// NewParkConn follows the session on raw with t.
func NewParkConn(raw net.Conn, t Tracker) *ParkConn { return &ParkConn{Conn: raw, t: t} }

// Raw is the real connection.
func (c *ParkConn) Raw() net.Conn { return c.Conn }

// Clean says whether the client quit cleanly and nothing went wrong on
// the connection since: it may be reset and parked.
func (c *ParkConn) Clean() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.quit && !c.ended && c.t.Clean()
}

func (c *ParkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	quit := c.quit
	c.mu.Unlock()
	if quit {
		c.t.FromClient(p) // makes it unclean
		return len(p), nil
	}
	n, q := c.t.FromClient(p)
	w, err := c.Conn.Write(p[:n])
	if err != nil {
		c.setEnded()
		return w, err
	}
	if q {
		c.mu.Lock()
		c.quit = true
		c.mu.Unlock()
		// End the relay's read of the upstream now, not when the client
		// closes: some clients wait for the server to close after their
		// Terminate. A read deadline leaves the connection intact (a
		// timeout is not sticky, for TLS either).
		c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	return len(p), nil
}

func (c *ParkConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.FromUpstream(p[:n])
	}
	if err == nil {
		return n, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ne net.Error
	switch {
	case c.quit && c.closed && errors.As(err, &ne) && ne.Timeout():
		return n, net.ErrClosed
	case c.quit && !c.ended && errors.As(err, &ne) && ne.Timeout():
		return n, io.EOF // the session ends here for this client
	}
	c.ended = true
	return n, err
}

// CloseWrite half-closes the real connection, except after a clean quit.
func (c *ParkConn) CloseWrite() error {
	c.mu.Lock()
	quit := c.quit
	if !quit {
		c.ended = true
	}
	c.mu.Unlock()
	if quit {
		return nil
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the real connection, except after a clean quit: then it
// only ends the relay's reads, and the connection waits for Discard or a
// new owner.
func (c *ParkConn) Close() error {
	c.mu.Lock()
	keep := c.quit && !c.ended
	again := c.closed
	c.closed = true
	c.mu.Unlock()
	if keep {
		// Only the first close (the relay's) ends its reads: a later one
		// (the connection function's deferred close) may come when the
		// session is already being reset or used by its next client.
		if !again {
			c.Conn.SetReadDeadline(time.Unix(1, 0))
		}
		return nil
	}
	return c.Conn.Close()
}

func (c *ParkConn) setEnded() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// Quit says whether the client's clean quit was held back: the relay's
// end is then not the server's doing, and the client is owed no farewell.
func (c *ParkConn) Quit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.quit
}
