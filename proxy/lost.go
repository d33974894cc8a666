package proxy

import (
	"errors"
	"io"
	"syscall"
)

// LostUpstream says, for the client, why its session ended when the
// upstream broke it off with err (io.EOF: the upstream closed without the
// server's goodbye), and what to do. The engines send it in their
// protocol's error (see Farewell).
func LostUpstream(err error) string {
	var cause string
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		cause = "the upstream closed the connection in the middle of the session, without an error of its own"
	case errors.Is(err, syscall.ECONNRESET):
		cause = "the upstream reset the connection in the middle of the session"
	case errors.Is(err, syscall.ETIMEDOUT) || IsTimeout(err):
		cause = "the upstream stopped answering: data sent to it went unacknowledged for --upstream-tcp-timeout, so the network path to it looks dead"
	case errors.Is(err, syscall.EPIPE):
		cause = "the upstream closed the connection while the proxy was sending to it"
	default:
		cause = "the connection to the upstream failed in the middle of the session (" + err.Error() + ")"
	}
	return cause + ". Fix: connect again; if it keeps happening, check the DB's events and log (a restart or failover) and the network path to it"
}
