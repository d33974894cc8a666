package emulator

import (
	"context"
	"io"
	"net"
	"time"
)

// relayLinger is how long a client may go on sending once its backend
// session is over, before the front closes it.
const relayLinger = 5 * time.Second

// relay copies bytes both ways between a logged-in client and its backend
// session until both directions end, then closes both. The rules:
//
//   - A side that finishes sending (EOF) has the other side's write half
//     closed (a FIN; close_notify over TLS), and the other direction goes
//     on: a server still owes the answers to what it was sent, a client
//     still reads a server's last words.
//   - Once the backend has finished, the client has linger to finish too: a pooled client that never reads would otherwise hold the
//     session open for ever.
//   - Any failure (a reset, a write that cannot be delivered, the linger
//     running out) or ctx ending closes both at once, which ends the
//     other direction too.
//
// Two goroutines per session: the caller's and one more.
func relay(ctx context.Context, client, backend net.Conn, linger time.Duration) {
	closeBoth := func() {
		client.Close()
		backend.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	toBackend := make(chan struct{})
	go func() {
		defer close(toBackend)
		if !copyHalf(backend, client) {
			closeBoth()
		}
	}()
	if copyHalf(client, backend) {
		client.SetReadDeadline(time.Now().Add(linger))
	} else {
		closeBoth()
	}
	<-toBackend
	closeBoth()
}

// copyHalf copies src to dst until src ends. At src's EOF it closes dst's
// write half, so that dst's peer sees the end too, and reports true; any
// failure reports false.
func copyHalf(dst, src net.Conn) bool {
	if _, err := io.Copy(dst, src); err != nil {
		return false
	}
	cw, ok := dst.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}
