package pgwire

import (
	"crypto/tls"
	"fmt"
	"net"
)

// Hello is what a client opened with: a startup message, or a cancel
// request (which carries nothing else and closes).
type Hello struct {
	Startup *Startup
	Cancel  *CancelKey
	// Conn is the connection to go on with: the client's, or a TLS server
	// connection over it when an SSLRequest was accepted.
	Conn net.Conn
}

// HelloOptions decide how the server side answers encryption requests.
type HelloOptions struct {
	// TLS, when set, accepts an SSLRequest ('S') and serves TLS with it;
	// when nil the answer is 'N' and the client goes on in plaintext.
	// GSSENCRequest is always answered 'N'.
	TLS *tls.Config
	// RequireTLS refuses a startup message that arrives without TLS, as
	// a hostssl-only pg_hba does.
	RequireTLS bool
}

// ReadHello reads the client's opening packets, answering SSLRequest and
// GSSENCRequest, until a StartupMessage or a CancelRequest arrives. The
// caller sets the deadline on c.
func ReadHello(c net.Conn, o HelloOptions) (*Hello, error) {
	conn := c
	var sawSSL, sawGSS, onTLS bool
	for {
		op, err := readOpening(conn)
		if err != nil {
			return nil, err
		}
		switch op.code {
		case CodeGSSENCRequest:
			if sawGSS || onTLS {
				return nil, protocolErrorf("unexpected GSSENC request")
			}
			sawGSS = true
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, fmt.Errorf("answer GSSENC request: %w", err)
			}
		case CodeSSLRequest:
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
		case CodeCancelRequest:
			return &Hello{Cancel: op.cancel, Conn: conn}, nil
		default:
			if o.RequireTLS && !onTLS {
				return nil, &ProtocolError{Code: CodeInvalidAuthorization,
					Message: fmt.Sprintf("no encryption: this server requires SSL for user %q", op.startup.User())}
			}
			return &Hello{Startup: op.startup, Conn: conn}, nil
		}
	}
}
