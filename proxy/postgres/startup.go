package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Request codes of the packets that may open a connection, in place of a
// protocol version.
const (
	codeCancel uint32 = 80877102
	codeSSL    uint32 = 80877103
	codeGSSENC uint32 = 80877104
)

// Bounds of an opening packet, length word included. PostgreSQL itself
// rejects startup packets over 10,000 bytes (MAX_STARTUP_PACKET_LENGTH).
const (
	minStartupLen = 8
	maxStartupLen = 10000
)

// Startup is a parsed StartupMessage.
type Startup struct {
	// Minor is the 3.x minor version the client asked for.
	Minor uint16
	// Params are the client's parameters (user, database, application_name,
	// options, ...), without protocol options.
	Params map[string]string
	// ProtocolOptions are the "_pq_." parameters the client asked for. The
	// proxy supports none and reports them in NegotiateProtocolVersion.
	ProtocolOptions []string
}

// CancelKey identifies a backend to cancel: a process id and a secret.
type CancelKey struct {
	PID    uint32
	Secret []byte
}

// opening is one opening packet: a request code or a startup message.
type opening struct {
	code    uint32 // codeSSL, codeGSSENC, codeCancel, or 0 for a StartupMessage
	startup *Startup
	cancel  *CancelKey
}

// readOpening reads exactly one opening packet from r: a length word and that
// many bytes, never more, so bytes after it (a TLS ClientHello) stay unread.
func readOpening(r io.Reader) (*opening, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, fmt.Errorf("read startup packet length: %w", err)
	}
	if hdr[0] == 0x16 {
		return nil, protocolErrorf("the client started TLS directly (sslnegotiation=direct); rds-iam-proxy accepts plaintext on its local listener: connect with sslmode=disable or prefer")
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < minStartupLen || n > maxStartupLen {
		return nil, protocolErrorf("invalid startup packet length %d (must be %d..%d): is this a PostgreSQL client?", n, minStartupLen, maxStartupLen)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read startup packet: %w", err)
	}
	code := binary.BigEndian.Uint32(body[:4])
	switch code {
	case codeSSL, codeGSSENC:
		if n != 8 {
			return nil, protocolErrorf("invalid length %d for an SSL/GSSENC request", n)
		}
		return &opening{code: code}, nil
	case codeCancel:
		// PID and secret; protocol 3.2 allows secrets of 4..256 bytes.
		if len(body) < 12 || len(body) > 8+256 {
			return nil, protocolErrorf("invalid cancel request length %d", n)
		}
		return &opening{code: code, cancel: &CancelKey{PID: binary.BigEndian.Uint32(body[4:8]), Secret: bytes.Clone(body[8:])}}, nil
	}
	major, minor := code>>16, uint16(code&0xffff)
	if major != 3 {
		return nil, &Error{Code: CodeFeatureNotSupported, Reason: proxy.ReasonProtocol,
			Message: fmt.Sprintf("unsupported frontend protocol %d.%d: rds-iam-proxy speaks protocol 3", major, minor)}
	}
	st, err := parseStartupParams(body[4:])
	if err != nil {
		return nil, err
	}
	st.Minor = minor
	return &opening{startup: st}, nil
}

// parseStartupParams parses NUL-terminated name/value pairs ending in an
// empty name.
func parseStartupParams(b []byte) (*Startup, error) {
	st := &Startup{Params: map[string]string{}}
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, protocolErrorf("invalid startup packet layout: expected terminator as last byte")
		}
		if i == 0 {
			if len(b) != 1 {
				return nil, protocolErrorf("invalid startup packet layout: bytes after the terminator")
			}
			break
		}
		name := string(b[:i])
		b = b[i+1:]
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return nil, protocolErrorf("invalid startup packet layout: parameter %q has no value", name)
		}
		value := string(b[:j])
		b = b[j+1:]
		if strings.HasPrefix(name, "_pq_.") {
			st.ProtocolOptions = append(st.ProtocolOptions, name)
			continue
		}
		st.Params[name] = value
	}
	if st.Params["user"] == "" {
		return nil, &Error{Code: CodeInvalidAuthorization, Reason: proxy.ReasonProtocol,
			Message: "no PostgreSQL user name specified in startup packet"}
	}
	return st, nil
}

// User is the user the client asked for.
func (s *Startup) User() string { return s.Params["user"] }

// Database is the database the client asked for; like PostgreSQL, it
// defaults to the user name.
func (s *Startup) Database() string {
	if db := s.Params["database"]; db != "" {
		return db
	}
	return s.Params["user"]
}

// RuntimeParams are the parameters to pass upstream: everything but the
// user and database, which the login sets itself.
func (s *Startup) RuntimeParams() map[string]string {
	out := make(map[string]string, len(s.Params))
	for k, v := range s.Params {
		if k != "user" && k != "database" {
			out[k] = v
		}
	}
	return out
}
