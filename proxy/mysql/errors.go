package mysql

import (
	"io"
	"unicode/utf8"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// position is where a login is in the protocol, for an ERR: before the
// greeting an ERR goes out with sequence id 0 and no SQLSTATE; after it,
// with the next id and a SQLSTATE (the client knows the 4.1 protocol).
type position struct {
	seq     byte
	greeted bool
}

// errno is the error number f goes out with: the server's own when it
// carries one, else one a server would use for its reason.
//
// It is always a server's error number (mywire.Er*): MariaDB's client
// library takes a client-range number (2000-2999, such as 2003 "can't
// connect") in an ERR packet for a malformed packet and hides the
// message, so upstream failures use mywire.ErUpstreamConnect (1429, with
// SQLSTATE 08S01: a communication failure, which pools treat as
// transient) and a text that names the cause.
func errno(f *failure.Failure) uint16 {
	if f.Code.Errno != 0 {
		return f.Code.Errno
	}
	switch f.Reason {
	case failure.Limit, failure.HandshakeLimit, failure.Evicted:
		return mywire.ErConCount
	case failure.Credentials, failure.UpstreamAuth:
		return mywire.ErAccessDenied
	case failure.Shutdown:
		return mywire.ErServerShutdown
	case failure.Protocol:
		return mywire.ErHandshake
	}
	return mywire.ErUpstreamConnect
}

// maxMessage is what MySQL and MariaDB client libraries keep of an error
// message (MYSQL_ERRMSG_SIZE, 512 with the NUL); the mysql client cuts
// the rest.
const maxMessage = 511

// writeFailure sends f as an ERR packet at pos, cause and fix fitted to
// maxMessage together.
func writeFailure(w io.Writer, f *failure.Failure, pos position) error {
	return mywire.WritePacket(w, pos.seq, mywire.MarshalErr(errno(f), fitMessage("rds-iam-proxy: "+f.Cause, f.Fix, maxMessage), pos.greeted))
}

// minCause is what a cause keeps at least when a fix is long.
const minCause = 200

// fitMessage joins cause and fix within limit bytes, keeping both: the
// cause is shortened in its middle, so its head (what failed) and its
// tail (often the decisive detail: "Throttling", the server's own words)
// stay, and the fix stays whole unless it alone leaves the cause less
// than minCause, when its end is cut instead. The log has the full text.
func fitMessage(cause, fix string, limit int) string {
	msg := failure.Join(cause, fix)
	if len(msg) <= limit {
		return msg
	}
	if fix == "" {
		return middle(cause, limit)
	}
	sep := len(failure.FixSeparator)
	room := limit - sep - len(fix)
	if room < minCause {
		room = min(minCause, len(cause))
		fix = truncateUTF8(fix, limit-sep-room-len(ellipsis)) + ellipsis
	}
	return failure.Join(middle(cause, room), fix)
}

// ellipsis marks where a text was shortened.
const ellipsis = " [...] "

// middle shortens s to at most n bytes by cutting its middle: three fifths
// of the room for its head, the rest for its tail.
func middle(s string, n int) string {
	if len(s) <= n {
		return s
	}
	keep := n - len(ellipsis)
	head := truncateUTF8(s, keep*3/5)
	return head + ellipsis + tailUTF8(s, keep-len(head))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// tailUTF8 is the end of s, at most n bytes, without splitting a
// character.
func tailUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}
