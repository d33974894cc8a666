package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// relayLinger is how long a client may go on sending once its backend
// session is over, before the front closes it.
const relayLinger = 5 * time.Second

// lostDrain is how long the backend may still be read from once a write to
// it failed: what the kernel already holds arrives at once.
const lostDrain = time.Second

// relay copies bytes both ways between a logged-in client and its backend
// session until both directions end, then closes both. The rules:
//
//   - The client finishes sending (EOF): the backend's write half is
//     closed (a FIN; close_notify over TLS), and the backend's answers
//     still reach the client.
//   - The backend finishes sending (EOF) or fails: the client gets what
//     the backend sent, then its end (a FIN). From then on the client has
//     linger to finish: each read of the client's, and the write to the
//     backend in progress, may wait at most that long (a pooled client
//     that never reads, or a backend that said goodbye and stopped
//     reading, would otherwise hold the session open for ever).
//   - A write to the backend fails: the backend is not closed at once,
//     since what it sent before it went (often its own FATAL, the real
//     reason) may still wait to be read; reading it gets lostDrain, and
//     the session then ends as above.
//   - The client fails (a reset, a write that cannot be delivered) or ctx
//     ends: both are closed at once, which ends the other direction too.
//
// Two goroutines per session: the caller's and one more.
func relay(ctx context.Context, client, backend net.Conn, linger time.Duration) {
	relayWith(ctx, client, backend, linger, copyHalf)
}

// relayWith is relay with up copying the client's bytes to the backend
// (an Aurora MySQL member's front looks at its packets: copyShimmed); the
// same rules hold, as up reports how it ended as copyHalf does.
func relayWith(ctx context.Context, client, backend net.Conn, linger time.Duration, up func(dst, src net.Conn) halfEnd) {
	closeBoth := func() {
		client.Close()
		backend.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	toBackend := make(chan struct{})
	go func() {
		defer close(toBackend)
		switch up(backend, client) {
		case srcEnded:
			if !closeWrite(backend) {
				closeBoth()
			}
		case dstFailed:
			backend.SetReadDeadline(time.Now().Add(lostDrain))
			// The client may not be reading what is left to deliver.
			client.SetWriteDeadline(time.Now().Add(lostDrain + linger))
		default:
			closeBoth()
		}
	}()
	switch copyHalf(client, backend) {
	case srcEnded, srcFailed:
		if !closeWrite(client) {
			client.Close()
		}
		client.SetReadDeadline(time.Now().Add(linger))
		backend.SetWriteDeadline(time.Now().Add(linger))
	default:
		closeBoth()
	}
	<-toBackend
	closeBoth()
}

// halfEnd is how one direction of a relay ended.
type halfEnd int

const (
	srcEnded  halfEnd = iota // the source finished sending (EOF)
	srcFailed                // reading the source failed: a reset, a deadline, a close
	dstFailed                // writing to the destination failed
)

// copyHalf copies src to dst until src ends or either fails, and says
// which: the relay's rules differ for a source that failed and a
// destination that did.
func copyHalf(dst, src net.Conn) halfEnd {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return dstFailed
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return srcEnded
		default:
			return srcFailed
		}
	}
}

// closeWrite sends c's peer the end of the stream (a FIN; close_notify
// over TLS) and reports whether it could.
func closeWrite(c net.Conn) bool {
	cw, ok := c.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}
