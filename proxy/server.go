package proxy

import (
	"context"
	"errors"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
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

// Refuser is a Handler that can turn a connection away in its own protocol
// when the server's cap on connections logging in is full (see
// Server.LimitHandshakes). It owns c and must close it, within about two
// seconds whatever the client does.
type Refuser interface {
	RefuseConn(ctx context.Context, c net.Conn, r Refusal)
}

// Refusal says why a connection is turned away at accept.
type Refusal struct {
	// Failure names the cause and the fix, for the client.
	Failure *failure.Failure
	// Drop: too many refusals are in flight already to spend time on this
	// one; close it at once (it is still counted and logged).
	Drop bool
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

	// handshakes caps connections accepted and not yet relaying (nil:
	// none); refusing bounds the refusals in flight when it is full.
	handshakes *Gate
	refusing   chan struct{}
	busyLog    busyLog
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

// passKey carries a connection's place in the server's handshake cap to
// its handler (see Settings.BeginLogin).
type passKey struct{}

// maxRefusing bounds the connections being told "too many connections" at
// once; past it they are closed without a word. Each takes at most about
// two seconds, so this caps what a flood costs while still answering every
// real client of an ordinary overload.
const maxRefusing = 64

// LimitHandshakes caps the connections accepted and not yet relaying at
// max (0 or less: no cap), counted at accept before anything is read. When
// it is full a newcomer takes the place of the oldest connection that has
// not sent its first packet within grace (0: DefaultEvictGrace), which the
// handler then ends; with none to evict the newcomer is refused through
// the handler's Refuser (or closed). Call it before Serve.
func (s *Server) LimitHandshakes(max int, grace time.Duration) {
	s.handshakes = NewGate(max, grace)
	s.refusing = make(chan struct{}, maxRefusing)
}

// Handshakes is the handshake cap (nil: none).
func (s *Server) Handshakes() *Gate { return s.handshakes }

// passFrom is the connection's place in the handshake cap, if any.
func passFrom(ctx context.Context) *Pass {
	p, _ := ctx.Value(passKey{}).(*Pass)
	return p
}

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
		evictedBefore, _ := s.handshakes.Counts()
		pass, ok := s.handshakes.TryEnter()
		if !ok {
			s.refuse(c)
			continue
		}
		if evicted, _ := s.handshakes.Counts(); evicted != evictedBefore {
			s.busyLog.note(s.log, s.handshakes)
		}
		// Until the handler takes over the eviction (BeginLogin), an
		// eviction ends the connection's reads.
		pass.OnEvict(func() { c.SetReadDeadline(time.Unix(1, 0)) })
		s.log.Debug("connection accepted", "client", c.RemoteAddr().String())
		connCtx := s.connCtx
		if pass != nil {
			connCtx = context.WithValue(connCtx, passKey{}, pass)
		}
		go func() {
			defer s.wg.Done()
			defer pass.Leave()
			defer func() {
				// One connection's bug must not take every other
				// connection down with the process.
				if r := recover(); r != nil {
					c.Close()
					s.log.Error("connection handler panicked", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			s.handler.ServeConn(connCtx, c)
		}()
	}
}

// refuse turns away a connection the handshake cap has no place for: in
// the client's protocol when the handler can and not too many refusals
// are in flight, else by closing it. The caller has done s.wg.Add(1).
func (s *Server) refuse(c net.Conn) {
	s.busyLog.note(s.log, s.handshakes)
	r, ok := s.handler.(Refuser)
	if !ok {
		c.Close()
		s.wg.Done()
		return
	}
	refusal := Refusal{Failure: HandshakeLimit(s.handshakes.Max())}
	select {
	case s.refusing <- struct{}{}:
	default:
		refusal.Drop = true
		r.RefuseConn(s.connCtx, c, refusal)
		s.wg.Done()
		return
	}
	go func() {
		defer s.wg.Done()
		defer func() { <-s.refusing }()
		defer func() {
			if r := recover(); r != nil {
				c.Close()
				s.log.Error("connection refusal panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		r.RefuseConn(s.connCtx, c, refusal)
	}()
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
