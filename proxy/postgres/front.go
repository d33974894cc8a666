package postgres

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Hello is what a client opened with: a startup message, or a cancel request
// (which carries nothing else and closes).
type Hello struct {
	Startup *Startup
	Cancel  *CancelKey
	// Conn is the connection to go on with: the client's, or a TLS server
	// connection over it when the front accepted an SSLRequest.
	Conn net.Conn
}

// FrontOptions decide how the front answers encryption requests.
type FrontOptions struct {
	// TLS, when set, accepts an SSLRequest ('S') and serves TLS with it;
	// when nil the front answers 'N' and the client goes on in plaintext
	// (the proxy's local listener). GSSENCRequest is always answered 'N'.
	TLS *tls.Config
	// RequireTLS rejects a startup message that arrives without TLS, as RDS
	// does for rds_iam users (hostssl).
	RequireTLS bool
}

// ReadHello reads the client's opening packets until a StartupMessage or a
// CancelRequest arrives. The caller sets the deadline on c.
func ReadHello(c net.Conn, o FrontOptions) (*Hello, error) {
	conn := c
	var sawSSL, sawGSS, onTLS bool
	for {
		op, err := readOpening(conn)
		if err != nil {
			return nil, err
		}
		switch op.code {
		case codeGSSENC:
			if sawGSS || onTLS {
				return nil, protocolErrorf("unexpected GSSENC request")
			}
			sawGSS = true
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, fmt.Errorf("answer GSSENC request: %w", err)
			}
		case codeSSL:
			if sawSSL || onTLS {
				return nil, protocolErrorf("unexpected SSL request")
			}
			sawSSL = true
			if o.TLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, fmt.Errorf("answer SSL request: %w", err)
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, fmt.Errorf("answer SSL request: %w", err)
			}
			tc := tls.Server(conn, o.TLS)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("TLS handshake with client: %w", err)
			}
			conn, onTLS = tc, true
		case codeCancel:
			return &Hello{Cancel: op.cancel, Conn: conn}, nil
		default:
			if o.RequireTLS && !onTLS {
				return nil, &Error{Code: CodeInvalidAuthorization, Reason: proxy.ReasonProtocol,
					Message: fmt.Sprintf("no encryption: this server requires SSL for user %q", op.startup.User())}
			}
			return &Hello{Startup: op.startup, Conn: conn}, nil
		}
	}
}

// Greeting is what the client hears after a successful login upstream.
type Greeting struct {
	Params   map[string]string // the server's ParameterStatus values
	Key      CancelKey         // what the client should send to cancel
	TxStatus byte
	// Negotiate, when the client asked for a newer minor version or for
	// protocol options, tells it the minor version it gets and the options
	// not supported.
	Negotiate *pgproto3.NegotiateProtocolVersion
}

// Negotiation returns the NegotiateProtocolVersion answer a startup needs,
// or nil. The proxy speaks 3.0 to clients.
func Negotiation(st *Startup) *pgproto3.NegotiateProtocolVersion {
	if st.Minor == 0 && len(st.ProtocolOptions) == 0 {
		return nil
	}
	return &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: st.ProtocolOptions}
}

// WriteGreeting sends AuthenticationOk, the parameters, the cancel key and
// ReadyForQuery in one write.
func WriteGreeting(c net.Conn, g *Greeting) error {
	var buf []byte
	var err error
	if g.Negotiate != nil {
		if buf, err = g.Negotiate.Encode(buf); err != nil {
			return err
		}
	}
	if buf, err = (&pgproto3.AuthenticationOk{}).Encode(buf); err != nil {
		return err
	}
	for name, value := range g.Params {
		if buf, err = (&pgproto3.ParameterStatus{Name: name, Value: value}).Encode(buf); err != nil {
			return err
		}
	}
	if buf, err = (&pgproto3.BackendKeyData{ProcessID: g.Key.PID, SecretKey: g.Key.Secret}).Encode(buf); err != nil {
		return err
	}
	if buf, err = (&pgproto3.ReadyForQuery{TxStatus: g.TxStatus}).Encode(buf); err != nil {
		return err
	}
	_, err = c.Write(buf)
	return err
}

// maxPasswordLen bounds a PasswordMessage: IAM tokens with a session token
// are under 2 KB; PostgreSQL's own limit for auth packets is about 1 KB
// more than that for SCRAM, far below this.
const maxPasswordLen = 16 << 10

// RequestPassword asks the client for a cleartext password, as RDS does for
// IAM users, and returns what it sends.
func RequestPassword(c net.Conn) (string, error) {
	req, err := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if err != nil {
		return "", err
	}
	if _, err := c.Write(req); err != nil {
		return "", fmt.Errorf("request password: %w", err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if hdr[0] != 'p' {
		return "", protocolErrorf("expected a password message, got message type %q", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 5 || n > maxPasswordLen {
		return "", protocolErrorf("invalid password message length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if body[len(body)-1] != 0 || bytes.IndexByte(body, 0) != len(body)-1 {
		return "", protocolErrorf("malformed password message")
	}
	return string(body[:len(body)-1]), nil
}

// WriteNegotiation sends NegotiateProtocolVersion when st needs one; a
// server sends it before any authentication request.
func WriteNegotiation(w io.Writer, st *Startup) error {
	n := Negotiation(st)
	if n == nil {
		return nil
	}
	buf, err := n.Encode(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
