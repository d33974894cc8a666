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
// either way for that long (Relay then returns ErrIdle).
type Stats struct {
	FromClient   atomic.Int64
	FromUpstream atomic.Int64
	Observer     Observer
	IdleTimeout  time.Duration

	last atomic.Int64 // unix nanoseconds of the last byte either way
}

// ErrIdle ends a session that was idle for its IdleTimeout.
var ErrIdle = errors.New("idle timeout: no bytes either way")

func (s *Stats) fromClient(n int64) {
	s.last.Store(time.Now().UnixNano())
	s.FromClient.Add(n)
	if s.Observer != nil {
		s.Observer.BytesFromClient(n)
	}
}

func (s *Stats) fromUpstream(n int64) {
	s.last.Store(time.Now().UnixNano())
	s.FromUpstream.Add(n)
	if s.Observer != nil {
		s.Observer.BytesFromUpstream(n)
	}
}

// Relay copies bytes between client and upstream until both directions end
// or ctx is done, then closes both. The two sides are not alike:
//
//   - When the client finishes sending (EOF), the upstream's write half is
//     closed and the relay waits for the upstream to finish: a server owes
//     the answers to what it was sent, and closes once it has given them.
//   - When the upstream finishes, the session is over: the client's write
//     half is closed and the client gets linger (per read) to go quiet.
//     Bytes it still sends then have nowhere to go and are dropped.
//
// Any other error in either direction closes both at once.
func Relay(ctx context.Context, client, upstream net.Conn, stats *Stats, linger time.Duration) error {
	if linger <= 0 {
		linger = DefaultLinger
	}
	var upstreamDone atomic.Bool
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
	// One direction on a new goroutine, the other on the caller's: two
	// goroutines per connection in all.
	// Whichever direction fails closes both at once, so the other, perhaps
	// blocked reading an idle peer, ends too.
	run := func(dst, src net.Conn, count func(int64), peerDone *atomic.Bool, linger time.Duration, atEOF func()) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("relay panicked: %v", r)
			}
			if err != nil {
				closeBoth()
			}
		}()
		return pipe(dst, src, count, peerDone, linger, atEOF)
	}
	go func() {
		errc <- run(upstream, client, stats.fromClient, &upstreamDone, linger, func() {
			if !CloseWrite(upstream) {
				upstream.Close() // the upstream must learn the client left
			}
		})
	}()
	errc <- run(client, upstream, stats.fromUpstream, nil, 0, func() {
		upstreamDone.Store(true)
		if !CloseWrite(client) {
			client.Close()
		}
		// The client direction is likely blocked in a read already: bound
		// it now, not only from its next read.
		client.SetReadDeadline(time.Now().Add(linger))
	})

	var first error
	for range 2 {
		err := <-errc
		if err != nil {
			closeBoth()
			if first == nil {
				first = err
			}
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
// session left to report it to.
func pipe(dst, src net.Conn, count func(int64), peerDone *atomic.Bool, linger time.Duration, atEOF func()) error {
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
			count(int64(w))
			if werr != nil {
				if over() {
					return nil // e.g. a Terminate after the server's FATAL
				}
				return werr
			}
		}
		if rerr != nil {
			switch {
			case errors.Is(rerr, io.EOF):
				atEOF()
				return nil
			case over() && (IsTimeout(rerr) || errors.Is(rerr, net.ErrClosed)):
				return nil
			case errors.Is(rerr, net.ErrClosed):
				return nil // closed by us: the other direction failed or ctx ended
			}
			return rerr
		}
	}
}
