package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// relayBufSize is one TLS record's worth: a read from a tls.Conn returns at
// most one record, so a larger buffer would sit mostly unused, and it keeps
// an idle connection's memory small.
const relayBufSize = 16 << 10

// bufPool holds relay buffers. io.Copy would allocate its own 32 KB buffer
// per direction (and io.CopyBuffer ignores ours when the source has WriteTo,
// as a TCPConn does), so the relay runs its own copy loop.
var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// DefaultLinger is how long the relay waits, after one side has finished
// sending, for the other side to go quiet before closing it: in both
// database protocols a session is over once either side closes, but the
// last bytes (a FATAL message, the answer to a Terminate) must still get
// through.
const DefaultLinger = 5 * time.Second

// Stats count the bytes each way; safe to read while the relay runs.
// Observer, when set, hears every chunk as it goes (live metrics).
// IdleTimeout, when positive, ends a session in which no byte has moved
// either way for that long (Relay then returns ErrIdle). Farewell, when
// set, tells the client why when the upstream breaks the session off.
type Stats struct {
	FromClient   atomic.Int64
	FromUpstream atomic.Int64
	Observer     Observer
	IdleTimeout  time.Duration
	Farewell     Farewell

	last atomic.Int64 // unix nanoseconds of the last byte either way
}

// Farewell lets an engine end a session that the upstream broke off (a
// reset, a dead network path, a close without the server's goodbye) with
// an error in the client's protocol. Without it the client sees only a
// closed socket ("server closed the connection unexpectedly", "Lost
// connection to server") and nothing says why. It follows the bytes each
// way, so that it speaks only where a message may start, never inside
// one. FromUpstream and FromClient run on different goroutines.
type Farewell interface {
	FromUpstream(p []byte)
	FromClient(p []byte)
	// Message is what to send the client now that the upstream is gone
	// because of err (io.EOF: it closed), or nil when nothing can be sent
	// cleanly: in the middle of a message, or after the server's own
	// goodbye.
	Message(err error) []byte
}

// ErrIdle ends a session that was idle for its IdleTimeout.
var ErrIdle = errors.New("idle timeout: no bytes either way")

func (s *Stats) fromClient(p []byte) {
	n := int64(len(p))
	s.last.Store(time.Now().UnixNano())
	s.FromClient.Add(n)
	if s.Observer != nil {
		s.Observer.BytesFromClient(n)
	}
	if s.Farewell != nil {
		s.Farewell.FromClient(p)
	}
}

func (s *Stats) fromUpstream(p []byte) {
	n := int64(len(p))
	s.last.Store(time.Now().UnixNano())
	s.FromUpstream.Add(n)
	if s.Observer != nil {
		s.Observer.BytesFromUpstream(n)
	}
	if s.Farewell != nil {
		s.Farewell.FromUpstream(p)
	}
}

// farewellWrite bounds the write of a farewell to a client that may have
// stopped reading.
const farewellWrite = 2 * time.Second

// Relay copies bytes between client and upstream until both directions end
// or ctx is done, then closes both. The two sides are not alike:
//
//   - When the client finishes sending (EOF), the upstream's write half is
//     closed and the relay waits for the upstream to finish: a server owes
//     the answers to what it was sent, and closes once it has given them.
//   - When the upstream finishes, the session is over: the client's write
//     half is closed and the client gets linger (per read) to go quiet.
//     Bytes it still sends then have nowhere to go and are dropped.
//   - When the upstream fails (a reset, a timeout, a write that cannot be
//     delivered) or closes while the client still talks to it, the client
//     is told why through stats.Farewell where its protocol allows, and
//     then ended as if the upstream had finished.
//
// Any other error in either direction (the client's, or the context's)
// closes both at once. The error returned is the first failure, so the
// log says why a session ended.
func Relay(ctx context.Context, client, upstream net.Conn, stats *Stats, linger time.Duration) error {
	if linger <= 0 {
		linger = DefaultLinger
	}
	var upstreamDone, clientDone atomic.Bool
	// lost is why writing to the upstream failed; the direction that
	// reads the upstream (the only writer to the client) tells the client.
	var lost atomic.Pointer[error]
	errc := make(chan error, 2)
	closeBoth := sync.OnceFunc(func() {
		client.Close()
		upstream.Close()
	})
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	var idled atomic.Bool
	if stats.IdleTimeout > 0 {
		// A timer that re-arms itself for the rest of the idle period
		// after each activity, instead of read deadlines that would fight
		// the linger logic below.
		stats.last.Store(time.Now().UnixNano())
		var timer *time.Timer
		var mu sync.Mutex
		check := func() {
			left := time.Until(time.Unix(0, stats.last.Load()).Add(stats.IdleTimeout))
			if left > 0 {
				mu.Lock()
				timer.Reset(left)
				mu.Unlock()
				return
			}
			idled.Store(true)
			closeBoth()
		}
		mu.Lock()
		timer = time.AfterFunc(stats.IdleTimeout, check)
		mu.Unlock()
		defer func() {
			mu.Lock()
			timer.Stop()
			mu.Unlock()
		}()
	}
	// endClient ends a session whose upstream is over (why: io.EOF, or
	// how it failed): it says why, if the client still listens and the
	// protocol allows, then ends the client as for an upstream EOF. The
	// client direction is likely blocked in a read already: bound it now,
	// not only from its next read. Only the direction that reads the
	// upstream calls it, being the client's only writer.
	var why error
	endClient := sync.OnceFunc(func() {
		upstreamDone.Store(true)
		if stats.Farewell != nil && !clientDone.Load() && ctx.Err() == nil && !idled.Load() {
			if msg := stats.Farewell.Message(why); msg != nil {
				client.SetWriteDeadline(time.Now().Add(farewellWrite))
				client.Write(msg)
			}
		}
		if !CloseWrite(client) {
			client.Close()
		}
		client.SetReadDeadline(time.Now().Add(linger))
	})
	// recovered turns a panic in a direction into its error, and ends
	// both: one session's bug must not take the process down, nor leave
	// the other direction blocked.
	recovered := func(err *error) {
		if r := recover(); r != nil {
			*err = fmt.Errorf("relay panicked: %v", r)
			closeBoth()
		}
	}
	// One direction on a new goroutine, the other on the caller's: two
	// goroutines per connection in all.
	go func() {
		err := func() (err error) {
			defer recovered(&err)
			var toUpstream bool
			toUpstream, err = pipe(upstream, client, stats.fromClient, &upstreamDone, linger, func() {
				clientDone.Store(true)
				if !CloseWrite(upstream) {
					upstream.Close() // the upstream must learn the client left
				}
			})
			if err != nil && toUpstream {
				// The upstream failed under a write: hand over to the
				// other direction, which owns the client, by closing the
				// upstream it is reading.
				lost.CompareAndSwap(nil, &err)
				upstream.Close()
				return err
			}
			if err != nil {
				closeBoth() // the other direction may be blocked reading an idle peer
			}
			return err
		}()
		errc <- err
	}()
	errc <- func() (err error) {
		defer recovered(&err)
		var toClient bool
		toClient, err = pipe(client, upstream, stats.fromUpstream, nil, 0, func() { why = io.EOF; endClient() })
		if p := lost.Load(); p != nil && err == nil {
			err = *p // the other direction closed the upstream: say why
		}
		switch {
		case err == nil:
		case toClient:
			closeBoth()
		default: // the upstream failed
			why = err
			endClient()
		}
		return err
	}()

	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	closeBoth()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if idled.Load() {
		return ErrIdle
	}
	return first
}

// pipe copies src to dst and calls atEOF when src ends. While peerDone is
// set (the other side has finished), each read from src may wait at most
// linger, and a quiet or failed src ends the copy without error: there is no
// session left to report it to. atDst says whether an error came from
// writing dst rather than reading src.
func pipe(dst, src net.Conn, seen func([]byte), peerDone *atomic.Bool, linger time.Duration, atEOF func()) (atDst bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	over := func() bool { return peerDone != nil && peerDone.Load() }
	for {
		if over() {
			src.SetReadDeadline(time.Now().Add(linger))
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			if w > 0 {
				seen(buf[:w])
			}
			if werr != nil {
				if over() {
					return false, nil // e.g. a Terminate after the server's FATAL
				}
				return true, werr
			}
		}
		if rerr != nil {
			switch {
			case errors.Is(rerr, io.EOF):
				atEOF()
				return false, nil
			case over() && (IsTimeout(rerr) || errors.Is(rerr, net.ErrClosed)):
				return false, nil
			case errors.Is(rerr, net.ErrClosed):
				return false, nil // closed by us: the other direction failed or ctx ended
			}
			return false, rerr
		}
	}
}
