package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// DefaultLinger is how long the relay waits, after the upstream has
// finished, for the client to go quiet before closing it: in both
// database protocols a session is over once either side closes, but the
// last bytes (a FATAL message, the answer to a Terminate) must still get
// through.
const DefaultLinger = 5 * time.Second

// ErrIdle ends a session that was idle for its IdleTimeout.
var ErrIdle = errors.New("idle timeout: no bytes either way")

// RelayOptions say how Relay runs one session; the zero value is a plain
// relay.
type RelayOptions struct {
	// Linger is how long each read of the client may wait once the
	// upstream is over (rule 3 of Relay); 0: DefaultLinger.
	Linger time.Duration
	// IdleTimeout, when positive, ends a session in which no byte has
	// moved either way for that long (rule 6).
	IdleTimeout time.Duration
	// Observer hears every chunk as it goes (live metrics).
	Observer Observer
	// Farewell, when set, tells the client why the upstream broke the
	// session off (rule 7). It follows one session: never share one.
	Farewell Farewell
}

// Counts are the bytes a relay delivered each way.
type Counts struct {
	FromClient, FromUpstream int64
}

// Relay copies a logged-in session's bytes between client and upstream
// until it ends, and returns what it moved and why it ended. These are
// its rules; the code below follows them one for one.
//
//  1. Two directions: "up" copies the client's bytes to the upstream on a
//     new goroutine, "down" the upstream's to the client on the caller's.
//     Each is the only reader of its source and the only writer of its
//     destination: only down writes to the client (relayed bytes, then
//     perhaps the farewell), only up to the upstream.
//  2. The client finishes (EOF): up half-closes the upstream (or closes
//     it, when it cannot be half-closed) and ends. down goes on with no
//     time limit: a server owes the answers to what it was sent, and
//     closes once it has given them.
//  3. The upstream finishes (EOF) or fails (a read error): the session is
//     over. down says goodbye to the client (rule 7), half-closes it (or
//     closes it), and ends. From then on each read of the client's, and
//     the write to the upstream in progress, may wait at most Linger, and
//     what the client still sends is dropped: up ends without error when
//     the client goes quiet, closes, or a write to the upstream fails.
//  4. The upstream fails under a write of up's while it is not over: up
//     records why and gives down a moment to read what the upstream sent
//     before it failed (often its own FATAL); down then ends the client as
//     in rule 3 with that error.
//  5. The client fails (a read error other than EOF, a write error):
//     both connections are closed at once; there is nobody to tell.
//  6. ctx ends (a hard shutdown) or the session was idle for IdleTimeout:
//     both connections are closed at once.
//  7. The farewell (Farewell.Message, in the client's protocol) is sent
//     only in rules 3 and 4, only to a client that has not finished as in
//     rule 2, and never when the session ends by rule 6.
//  8. An operation that fails with net.ErrClosed failed because one of
//     these rules closed its connection: it ends its direction quietly.
//  9. Relay returns once both directions have ended, with both
//     connections closed. Its error is ctx's (rule 6), ErrIdle (rule 6),
//     else down's error, else up's: nil for a session that ended cleanly.
//
// A panic in a direction (a bug in an Observer or a Farewell) becomes its
// error and closes both connections, as in rule 5.
func Relay(ctx context.Context, client, upstream net.Conn, o RelayOptions) (Counts, error) {
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	s := &session{ctx: ctx, client: client, upstream: upstream, o: o, toClient: client}
	if r := newRawSock(client); r != nil {
		s.toClient = r // see rawio_linux.go
	}
	defer s.closeBoth() // rule 9
	if o.IdleTimeout > 0 {
		s.idle = startIdleTimer(o.IdleTimeout, s.closeBoth) // rule 6
		defer s.idle.stop()
	}
	stop := context.AfterFunc(ctx, s.closeBoth) // rule 6
	defer stop()

	upDone := make(chan error, 1)
	go func() { upDone <- s.run(s.up, client) }()
	downErr := s.run(s.down, upstream)
	upErr := <-upDone

	counts := Counts{FromClient: s.fromClient, FromUpstream: s.fromUpstream}
	switch {
	case ctx.Err() != nil:
		return counts, ctx.Err()
	case s.idle.fired():
		return counts, ErrIdle
	case downErr != nil:
		return counts, downErr
	}
	return counts, upErr
}

// session is one Relay's state.
type session struct {
	ctx              context.Context
	client, upstream net.Conn
	o                RelayOptions
	idle             *idleTimer // nil: no idle timeout
	toClient         io.Writer  // client's Write, raw when it can be (only down writes to the client)

	clientDone   atomic.Bool           // rule 2 happened: no farewell
	upstreamDone atomic.Bool           // rule 3 happened: the client lingers
	lost         atomic.Pointer[error] // rule 4: why a write to the upstream failed

	// Each is written only by its direction, and read once both ended.
	fromClient, fromUpstream int64
}

// run runs one direction, reading its source in chunks (see chunks: no
// buffer held while the source is idle), turning a panic into its error:
// one session's bug must not take the process down, nor leave the other
// direction blocked.
func (s *session) run(direction func(src *chunks) error, src net.Conn) (err error) {
	c := newChunks(src)
	defer c.release()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("relay panicked: %v", p)
			s.closeBoth()
		}
	}()
	return direction(c)
}

// up copies the client's bytes to the upstream.
func (s *session) up(src *chunks) error {
	for {
		if s.upstreamDone.Load() {
			s.client.SetReadDeadline(time.Now().Add(s.o.Linger)) // rule 3
		}
		chunk, rerr := src.read()
		if n := len(chunk); n > 0 {
			s.toSendUp(chunk)
			w, werr := s.upstream.Write(chunk)
			if w > 0 {
				s.sentUp(chunk[:w])
			}
			switch {
			case werr == nil:
			case s.upstreamDone.Load(), errors.Is(werr, net.ErrClosed):
				return nil // rules 3 and 8
			default:
				s.upstreamFailed(werr) // rule 4
				return werr
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF): // rule 2
			s.clientDone.Store(true)
			if !CloseWrite(s.upstream) {
				s.upstream.Close()
			}
			return nil
		case errors.Is(rerr, net.ErrClosed):
			return nil // rule 8
		case s.upstreamDone.Load() && IsTimeout(rerr):
			return nil // rule 3: the client went quiet
		default: // rule 5
			s.closeBoth()
			return rerr
		}
	}
}

// down copies the upstream's bytes to the client.
func (s *session) down(src *chunks) error {
	for {
		chunk, rerr := src.read()
		if len(chunk) > 0 {
			w, werr := s.toClient.Write(chunk)
			if w > 0 {
				s.sentDown(chunk[:w])
			}
			switch {
			case werr == nil:
			case errors.Is(werr, net.ErrClosed):
				return nil // rule 8
			default: // rule 5
				s.closeBoth()
				return werr
			}
		}
		if rerr == nil {
			continue
		}
		why := rerr
		if p := s.lost.Load(); p != nil && (errors.Is(rerr, net.ErrClosed) || IsTimeout(rerr)) {
			why = *p // rule 4
		} else if errors.Is(rerr, net.ErrClosed) {
			return nil // rule 8
		}
		s.endClient(why) // rule 3
		if errors.Is(why, io.EOF) {
			return nil
		}
		return why
	}
}

// upstreamFailed hands a failed write to the upstream over to down, which
// owns the client (rule 4): it records why, then bounds down's reads of
// the upstream. Closing the upstream would be quicker, but it would throw
// away what the server sent before it went (its own FATAL, the real
// reason) that down has not read yet. (A function of its own, so that
// taking err's address costs an allocation only when it happens, not per
// chunk.)
func (s *session) upstreamFailed(err error) {
	s.lost.CompareAndSwap(nil, &err)
	s.upstream.SetReadDeadline(time.Now().Add(lostDrain))
}

// lostDrain is how long down may still read from an upstream a write to
// which failed: what the kernel holds arrives at once.
const lostDrain = time.Second

// endClient ends the client's side of a session whose upstream is over
// (why: io.EOF, or how it failed): rules 3 and 7.
func (s *session) endClient(why error) {
	s.upstreamDone.Store(true)
	if s.o.Farewell != nil && !s.clientDone.Load() && s.ctx.Err() == nil && !s.idle.fired() {
		if msg := s.o.Farewell.Message(why); msg != nil {
			s.client.SetWriteDeadline(time.Now().Add(farewellWrite))
			s.client.Write(msg)
		}
	}
	if !s.closeClientWrite() {
		s.client.Close()
	}
	// up may be blocked in a read already: bound it now, not only from
	// its next read. It may also be blocked writing to an upstream that
	// half-closed and stopped reading (a COPY into a server that said
	// goodbye): what it still sends is dropped anyway.
	s.client.SetReadDeadline(time.Now().Add(s.o.Linger))
	s.upstream.SetWriteDeadline(time.Now().Add(s.o.Linger))
}

// closeClientWrite half-closes the client (CloseWrite), with the raw
// socket when there is one.
func (s *session) closeClientWrite() bool {
	if r, ok := s.toClient.(*rawSock); ok {
		return r.CloseWrite() == nil
	}
	return CloseWrite(s.client)
}

// toSendUp tells the farewell about a chunk of the client's before it
// goes to the upstream: once it is written, the upstream's answer may be
// relayed (and heard by the farewell) before this goroutine runs again,
// and a farewell that heard the answer before the question would take a
// result set for a command still waiting for its reply.
func (s *session) toSendUp(p []byte) {
	if s.o.Farewell != nil {
		s.o.Farewell.FromClient(p)
	}
}

// sentUp follows a chunk delivered to the upstream.
func (s *session) sentUp(p []byte) {
	s.fromClient += int64(len(p))
	s.idle.touch()
	s.o.Observer.BytesFromClient(int64(len(p)))
}

// sentDown follows a chunk delivered to the client.
func (s *session) sentDown(p []byte) {
	s.fromUpstream += int64(len(p))
	s.idle.touch()
	s.o.Observer.BytesFromUpstream(int64(len(p)))
	if s.o.Farewell != nil {
		s.o.Farewell.FromUpstream(p)
	}
}

// closeBoth ends both connections at once (rules 5, 6 and 9). Closing a
// connection twice is harmless, so it needs no guard.
func (s *session) closeBoth() {
	s.client.Close()
	s.upstream.Close()
}
