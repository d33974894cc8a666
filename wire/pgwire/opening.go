package pgwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Request codes of the packets that may open a connection, in place of a
// protocol version.
const (
	CodeCancelRequest uint32 = 80877102
	CodeSSLRequest    uint32 = 80877103
	CodeGSSENCRequest uint32 = 80877104
)

// Bounds of an opening packet, length word included. PostgreSQL itself
// rejects startup packets over 10,000 bytes (MAX_STARTUP_PACKET_LENGTH).
const (
	minStartupLen = 8
	maxStartupLen = 10000
)

// maxCancelSecret is the longest cancel secret: protocol 3.2 allows 4 to
// 256 bytes.
const maxCancelSecret = 256

// CancelKey identifies a backend to cancel: a process id and a secret.
type CancelKey struct {
	PID    uint32
	Secret []byte
}

// opening is one opening packet: a request code or a startup message.
type opening struct {
	code    uint32 // CodeSSLRequest, CodeGSSENCRequest, CodeCancelRequest, or 0 for a StartupMessage
	startup *Startup
	cancel  *CancelKey
}

// readOpening reads exactly one opening packet from r: a length word and
// that many bytes, never more, so bytes after it (a TLS ClientHello) stay
// unread.
func readOpening(r io.Reader) (*opening, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read startup packet length: %w", err)
	}
	if hdr[0] == 0x16 {
		return nil, &ProtocolError{Code: CodeProtocolViolation, Message: ErrDirectTLS.Error(), Err: ErrDirectTLS}
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < minStartupLen || n > maxStartupLen {
		return nil, protocolErrorf("invalid startup packet length %d (must be %d..%d): is this a PostgreSQL client?", n, minStartupLen, maxStartupLen)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read startup packet: %w", err)
	}
	code := binary.BigEndian.Uint32(body[:4])
	switch code {
	case CodeSSLRequest, CodeGSSENCRequest:
		if n != 8 {
			return nil, protocolErrorf("invalid length %d for an SSL/GSSENC request", n)
		}
		return &opening{code: code}, nil
	case CodeCancelRequest:
		if len(body) < 12 || len(body) > 8+maxCancelSecret {
			return nil, protocolErrorf("invalid cancel request length %d", n)
		}
		return &opening{code: code, cancel: &CancelKey{PID: binary.BigEndian.Uint32(body[4:8]), Secret: bytes.Clone(body[8:])}}, nil
	}
	major, minor := uint16(code>>16), uint16(code&0xffff)
	if major != 3 {
		v := &VersionError{Major: major, Minor: minor}
		return nil, &ProtocolError{Code: CodeFeatureNotSupported, Message: v.Error(), Err: v}
	}
	st, err := parseStartupParams(body[4:])
	if err != nil {
		return nil, err
	}
	st.Minor = minor
	return &opening{startup: st}, nil
}
