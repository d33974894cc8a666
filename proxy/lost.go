package proxy

import (
	"errors"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"io"
	"syscall"
)

// LostUpstream says, for the client, why its session ended when the
// upstream broke it off with err (io.EOF: the upstream closed without the
// server's goodbye), and what to do. The engines send it in their
// protocol's error (see Farewell).
func LostUpstream(err error) *failure.Failure {
	var cause string
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		cause = "the upstream closed the connection in the middle of the session, without an error of its own"
	case errors.Is(err, syscall.ECONNRESET):
		cause = "the upstream reset the connection in the middle of the session"
	case errors.Is(err, syscall.ETIMEDOUT) || IsTimeout(err),
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		// When a dead path's retries run out, the kernel reports the last
		// ICMP or neighbour failure it saw, if any, instead of ETIMEDOUT.
		cause = "the upstream stopped answering: what the proxy sent went unacknowledged for --upstream-tcp-timeout (" + errnoText(err) + "), so the network path to it looks dead"
	case errors.Is(err, syscall.EPIPE):
		cause = "the upstream closed the connection while the proxy was sending to it"
	default:
		cause = "the connection to the upstream failed in the middle of the session (" + err.Error() + ")"
	}
	return failure.Wrap(failure.Upstream, err, cause, "connect again; if it keeps happening, check the DB's events and log (a restart or failover) and the network path to it")
}

// errnoText is the system's words for err's errno ("connection timed
// out"), or err's own text.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
