package emulator

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// serve runs the instance's accept loop until Close: every connection is
// handed to h on a goroutine of its own, with a context that Close
// cancels. A connection still open then is cut (closed), so that Close
// returns promptly whatever its client or backend is doing.
//
// An emulated instance is a test tool, but a storm of clients goes
// through it: accepting must survive running out of file descriptors
// (wait, then accept again) rather than end the front.
func (i *instance) serve(h func(ctx context.Context, c net.Conn)) {
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel = cancel
	go func() {
		defer close(i.done)
		var backoff time.Duration
		for {
			c, err := i.ln.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if i.waitListening(ctx) {
					continue // stopped listening for a resume (see Pause)
				}
				if temporary(err) {
					backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
					i.log.Warn("accept failed; retrying", "err", err, "in", backoff)
					time.Sleep(backoff)
					continue
				}
				i.log.Error("accept loop ended", "err", err)
				return
			}
			backoff = 0
			if !i.admit(ctx, c) {
				continue
			}
			i.verify.accepted.Add(1)
			i.conns.Add(1)
			go func() {
				defer i.conns.Done()
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				h(ctx, c)
			}()
		}
	}()
}

// temporary reports whether an accept failed for a passing reason: a
// timeout, or no file descriptor free in the process or the system.
func temporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
