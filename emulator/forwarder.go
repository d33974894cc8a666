package emulator

import (
	"net"
	"sync"
	"time"
)

// forwarder is a loopback TCP listener that passes each connection on to
// where target says at accept time: how the emulator plays DNS (a cluster
// name that resolves to one instance, then another) and an instance's
// network (a restart cuts its connections and refuses new ones for a
// while). target "" refuses the connection (closed at once, as a port
// nobody listens on would be reset).
type forwarder struct {
	ln     net.Listener
	target func() string

	mu    sync.Mutex
	conns map[net.Conn]net.Conn // client -> the connection dialed for it
	wg    sync.WaitGroup
}

func startForwarder(target func() string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]net.Conn{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if temporary(err) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		// The target is read and the connection registered in one step
		// under mu, which cut takes too: a cut either sees the connection
		// or comes after it, never between (a connection routed to an
		// instance just before its restart would escape the cut).
		f.mu.Lock()
		to := f.target()
		if to != "" {
			f.conns[c] = nil
		}
		f.mu.Unlock()
		if to == "" {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a restarting host gives
			}
			c.Close()
			continue
		}
		f.wg.Add(1)
		go f.pipe(c, to)
	}
}

// pipe copies c to and from a new connection to addr until either ends.
func (f *forwarder) pipe(c net.Conn, addr string) {
	defer f.wg.Done()
	defer c.Close()
	// Registered by accept, before the dial, so that a cut during it
	// ends c too.
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	d, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer d.Close()
	f.mu.Lock()
	_, live := f.conns[c]
	if live {
		f.conns[c] = d
	}
	f.mu.Unlock()
	if !live {
		return // cut while dialing
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(d, c)
		closeWrite(d)
	}()
	copyHalf(c, d)
	closeWrite(c)
	<-done
}

// cut closes every connection passing through, as a host that restarts
// drops its sessions.
func (f *forwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c, d := range f.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		if d != nil {
			d.Close()
		}
		delete(f.conns, c) // a pipe still dialing sees it was cut
	}
}

// Close stops accepting, cuts what passes and waits for the pipes.
func (f *forwarder) Close() error {
	err := f.ln.Close()
	f.cut()
	f.wg.Wait()
	return err
}
