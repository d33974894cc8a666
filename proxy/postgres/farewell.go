package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// farewell follows the framing of what the upstream sends (a type byte,
// then a 4-byte length that counts itself) so that a session the upstream
// breaks off can end with a FATAL ErrorResponse the client's driver shows,
// as a server that terminates a backend sends one: only between messages,
// and not after the server's own FATAL. It implements proxy.Farewell.
type farewell struct {
	hdr    [5]byte
	hdrN   int   // header bytes of the current message seen so far
	left   int64 // body bytes of the current message still to come
	last   byte  // type of the last message whose header was complete
	broken bool  // a length no server sends: stop speaking for it
	age    *sessionAge
}

func (f *farewell) FromUpstream(p []byte) {
	for len(p) > 0 && !f.broken {
		if f.left > 0 {
			n := min(f.left, int64(len(p)))
			f.left -= n
			p = p[n:]
			continue
		}
		var hdr []byte
		if f.hdrN == 0 && len(p) >= len(f.hdr) {
			hdr, p = p[:len(f.hdr)], p[len(f.hdr):] // the usual case: a whole header in the chunk
		} else {
			n := copy(f.hdr[f.hdrN:], p)
			f.hdrN += n
			p = p[n:]
			if f.hdrN < len(f.hdr) {
				return
			}
			f.hdrN, hdr = 0, f.hdr[:]
		}
		f.last = hdr[0]
		size := int64(binary.BigEndian.Uint32(hdr[1:]))
		if size < 4 {
			f.broken = true
			return
		}
		f.left = size - 4
	}
}

func (f *farewell) FromClient([]byte) {}

func (f *farewell) Message(err error) []byte {
	if f.broken || f.hdrN != 0 || f.left != 0 || f.last == 'E' {
		return nil
	}
	var b bytes.Buffer
	lost := proxy.LostUpstream(err)
	lost.Code.SQLState = pgwire.CodeConnectionLost
	if errors.Is(err, proxy.ErrDemoted) {
		// 57P01, as a server that terminates a backend says: pools take it
		// for "reconnect".
		lost = proxy.DemotedFailure()
		lost.Code.SQLState = pgwire.CodeAdminShutdown
	} else if f := f.age.reached(); f != nil {
		lost = f
	}
	if writeFailure(&b, lost) != nil {
		return nil
	}
	return b.Bytes()
}
