package proxy

import (
	"errors"
	"net"
	"time"
)

// QuietFor is how long after its last answer a parked session is taken
// on a look at its socket alone (Quiet), with no round trip: a server
// that answered this recently and has said nothing since, not even its
// end, is there. Later, a round trip proves it, so a backend that hung
// (stopped, or black-holed by a failover) while parked costs the client
// Settings.AdoptTimeout and a login, not its session. PgBouncer's
// server_check_delay is the same idea at 30 s.
const QuietFor = time.Second

// LookParked is the check of a parked session taken within QuietFor of
// the server's last answer on it (answered): decided is false when a
// look cannot settle it (too long ago, or the socket cannot be looked
// at), and the caller proves it alive by a round trip; else err says why
// it is not alive (nil: it is). c is the session's connection.
func LookParked(c net.Conn, answered time.Time) (decided bool, err error) {
	if time.Since(answered) >= QuietFor {
		return false, nil
	}
	quiet, known := Quiet(c)
	switch {
	case !known:
		return false, nil
	case !quiet:
		return true, errParkedSpoke
	}
	return true, nil
}

// errParkedSpoke is a parked session with something on its socket.
var errParkedSpoke = errors.New("the server ended the session, or spoke on it, while it was parked")

// Quiet says whether nothing is waiting to be read on c's socket: no
// bytes, no end of stream, no error. A parked upstream session is quiet
// while it lives; one the server ended while it was parked (a restart, an
// administrator's pg_terminate_backend, an idle timeout) has its last
// message or its end waiting. known is false where the socket cannot be
// looked at without reading it (off Linux, or not a TCP or unix socket
// under its TLS): the caller then proves the session alive by a round
// trip instead. c's deadlines must not have passed.
//
// It looks through TLS (tls.Conn's NetConn) and the dead-path watch at
// the socket, so it cannot see a record TLS has read but not handed over;
// a session the proxy reads only in whole messages up to its
// ReadyForQuery leaves none.
func Quiet(c net.Conn) (quiet, known bool) {
	for {
		switch u := c.(type) {
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
			continue
		case *watchedConn:
			if u.dead.Load() {
				return false, true
			}
			c = u.tc // a look moves no bytes past its watch
			continue
		}
		return quietSocket(c)
	}
}
