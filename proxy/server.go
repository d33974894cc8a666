package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// Handler serves one accepted client connection. It owns c and must close
// it. ctx is cancelled when the server shuts down for good: connections
// still in their handshake then end at once, open sessions are cut.
type Handler interface {
	ServeConn(ctx context.Context, c net.Conn)
}

// Server runs the accept loop of one listener and tracks its connections so
// that shutdown can wait for them.
type Server struct {
	handler Handler
	log     *slog.Logger

	connCtx     context.Context
	cancelConn  context.CancelFunc
	cancelDrain context.CancelFunc // ends handshakes when Shutdown starts

	mu       sync.Mutex
	shutting bool           // set by Shutdown; no connection is added after
	wg       sync.WaitGroup // open connections; Add only under mu
}

// NewServer returns a server that hands connections to h.
func NewServer(h Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	drain, cancelDrain := context.WithCancel(context.Background())
	ctx = context.WithValue(ctx, drainKey{}, drain)
	return &Server{handler: h, log: log, connCtx: ctx, cancelConn: cancel, cancelDrain: cancelDrain}
}

type drainKey struct{}

// HandshakeContext is done when the server starts shutting down, while the
// ctx a handler gets ends only when open sessions are cut. A handler
// stops waiting for a client that has not finished its login (a silent
// TCP probe, a slow client) on the first, so that it does not hold the
// drain open until the deadline; a logged-in session ends on the second.
func HandshakeContext(ctx context.Context) context.Context {
	if d, ok := ctx.Value(drainKey{}).(context.Context); ok {
		return d
	}
	return ctx
}

// Serve accepts on ln until ctx is done (then it closes ln and returns nil)
// or accepting fails for good. Connections outlive Serve: see Shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || outOfFiles(err) {
				// Out of file descriptors and the like: wait and retry
				// rather than spin or die.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.shutting {
			s.mu.Unlock()
			c.Close()
			ln.Close()
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		s.log.Debug("connection accepted", "client", c.RemoteAddr().String())
		go func() {
			defer s.wg.Done()
			defer func() {
				// One connection's bug must not take every other
				// connection down with the process.
				if r := recover(); r != nil {
					c.Close()
					s.log.Error("connection handler panicked", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			s.handler.ServeConn(s.connCtx, c)
		}()
	}
}

// Shutdown waits for open connections to end until ctx is done, then cuts
// the rest and waits for their handlers to return. It reports whether every
// connection ended by itself.
func (s *Server) Shutdown(ctx context.Context) (clean bool) {
	s.mu.Lock()
	s.shutting = true
	s.mu.Unlock()
	s.cancelDrain()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancelConn()
		return true
	case <-ctx.Done():
		s.cancelConn()
		<-done
		return false
	}
}
