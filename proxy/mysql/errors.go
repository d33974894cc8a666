package mysql

import (
	"io"
	"strings"
	"unicode/utf8"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Error is a failure before the relay, as the client will see it: an ERR
// packet whose message starts "rds-iam-proxy: " and names the cause and
// the fix. It never holds a token or a secret.
//
// Code is always a server's error number (mywire.Er*): MariaDB's client
// library takes a client-range number (2000-2999, such as 2003 "can't
// connect") in an ERR packet for a malformed packet and hides the
// message, so upstream failures use mywire.ErUpstreamConnect (1429, with
// SQLSTATE 08S01: a communication failure, which pools treat as
// transient) and a text that names the cause.
type Error struct {
	Code    uint16
	Message string
	Reason  string // log label (proxy.Reason*)
	Err     error  // underlying cause, for the log only
	// Seq is the sequence id the ERR goes out with. Greeted says the
	// client has the greeting, so it knows the 4.1 protocol and reads a
	// SQLSTATE; before it, servers send none.
	Seq     byte
	Greeted bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// maxMessage is what MySQL and MariaDB client libraries keep of an error
// message (MYSQL_ERRMSG_SIZE, 512 with the NUL); the mysql client cuts
// the rest.
const maxMessage = 511

// writeError sends e as an ERR packet, its text fitted to maxMessage.
func writeError(w io.Writer, e *Error) error {
	return mywire.WritePacket(w, e.Seq, mywire.MarshalErr(e.Code, fitMessage("rds-iam-proxy: "+e.Message, maxMessage), e.Greeted))
}

// fitMessage shortens msg to limit bytes, keeping its "Fix: ..." part
// whole when there is one: the cause is cut in the middle instead, since
// the fix is what the person needs and the log has the full text.
func fitMessage(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	const cut = " [...] "
	if i := strings.LastIndex(msg, "Fix: "); i > 0 {
		fix := msg[i:]
		if room := limit - len(fix) - len(cut); room >= 80 {
			return truncateUTF8(msg[:i], room) + cut + fix
		}
	}
	return truncateUTF8(msg, limit-len(cut)) + cut
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
