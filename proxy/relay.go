package proxy

import (
	"context"
	"errors"
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
type Stats struct {
	FromClient   atomic.Int64
	FromUpstream atomic.Int64
}

// Relay copies bytes between client and upstream until both directions end
// or ctx is done, then closes both. When one side finishes sending (EOF) the
// other side's write half is closed, and the remaining direction keeps going
// while it stays active (each read may wait at most linger). Any error in
// either direction closes both at once.
func Relay(ctx context.Context, client, upstream net.Conn, stats *Stats, linger time.Duration) error {
	if linger <= 0 {
		linger = DefaultLinger
	}
	var halfClosed atomic.Bool
	errc := make(chan error, 2)
	closeBoth := sync.OnceFunc(func() {
		client.Close()
		upstream.Close()
	})
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	go func() { errc <- pipe(upstream, client, &stats.FromClient, &halfClosed, linger) }()
	go func() { errc <- pipe(client, upstream, &stats.FromUpstream, &halfClosed, linger) }()

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
	return first
}

// pipe copies src to dst. On EOF from src it closes dst's write half and
// marks the session half-closed so the other direction starts lingering.
func pipe(dst, src net.Conn, count *atomic.Int64, halfClosed *atomic.Bool, linger time.Duration) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if halfClosed.Load() {
			src.SetReadDeadline(time.Now().Add(linger))
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			count.Add(int64(w))
			if werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				halfClosed.Store(true)
				closeWrite(dst)
				// The other direction reads from dst and is likely blocked
				// already: bound that read now, not only the next one.
				dst.SetReadDeadline(time.Now().Add(linger))
				return nil
			}
			if halfClosed.Load() && isTimeout(rerr) {
				return nil // the other side finished and this one went quiet
			}
			if errors.Is(rerr, net.ErrClosed) {
				return nil // closed by us: the other direction failed or ctx ended
			}
			return rerr
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closeWrite half-closes c when it can (TCP FIN, or TLS close_notify), and
// closes it otherwise.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}
