package mywire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Pending is a server connection whose greeting has been read: the client
// side of a login, waiting for what to log in as. Who dials, and over
// what, is the caller's business.
type Pending struct {
	Conn     net.Conn
	Greeting *Greeting
}

// ReadGreeting reads the server's greeting from a new connection; ctx
// bounds it. The Pending owns conn from then on; on error conn is closed.
// An ERR in place of the greeting (too many connections, host blocked) is
// a *ServerError; anything else wrong a *ServerProtocolError.
func ReadGreeting(ctx context.Context, conn net.Conn) (*Pending, error) {
	g, err := readGreeting(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Pending{Conn: conn, Greeting: g}, nil
}

func readGreeting(ctx context.Context, conn net.Conn) (*Greeting, error) {
	stop := deadlineFrom(ctx, conn)
	defer stop()
	_, p, err := ReadPacket(conn, GreetingLimit)
	if err != nil {
		return nil, &ServerProtocolError{Step: "read the server's greeting", Err: err}
	}
	g, err := ParseGreeting(p)
	if err != nil {
		var se *ServerError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, &ServerProtocolError{Step: "read the server's greeting", Err: err}
	}
	return g, nil
}

// ServerProtocolError is a server that broke off, or answered something
// that is not MySQL, during a login.
type ServerProtocolError struct {
	Step string
	Err  error
}

func (e *ServerProtocolError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *ServerProtocolError) Unwrap() error { return e.Err }

// ErrNoTLS is a server that does not offer TLS to a login that needs it.
var ErrNoTLS = errors.New("the server does not offer TLS")

// TLSError is a failed TLS handshake with the server.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// UnsupportedPluginError is a server that asks for an auth plugin the
// login cannot (or, with Login.OnlyPlugin, may not) answer.
type UnsupportedPluginError struct{ Plugin string }

func (e *UnsupportedPluginError) Error() string {
	return fmt.Sprintf("the server asks for the auth plugin %q", e.Plugin)
}

// Login is what to log in as, for a client whose session is then relayed.
type Login struct {
	User     string
	Database string
	Password string
	Plugin   string // the auth plugin to answer with first
	// OnlyPlugin refuses a switch to any other plugin, so that the
	// password never goes out hashed or in clear for a plugin it was not
	// meant for.
	OnlyPlugin bool
	// Client is the client's answer to its greeting: its capabilities,
	// character set, max packet size and connection attributes go to the
	// server, so that the session relayed after the login is framed the
	// way the client expects.
	Client *HandshakeResponse
	// LocalInfile keeps CLIENT_LOCAL_FILES when the client and the server
	// both have it. Off, it is never sent, so the server refuses LOAD
	// DATA LOCAL INFILE instead of asking the client for a file.
	LocalInfile bool
}

// Session is a logged-in server connection, ready to relay.
type Session struct {
	Conn net.Conn
	// OK is the server's final OK payload, to forward to the client.
	OK []byte
	// Caps are the capabilities the login sent: they shape every
	// command's answer (CLIENT_DEPRECATE_EOF for Query).
	Caps uint32
}

// tlsHandshakeTimeout bounds the TLS handshake whatever ctx allows: a
// server that takes longer to answer a ClientHello is not going to log
// anyone in.
const tlsHandshakeTimeout = 10 * time.Second

// Login logs in: with tlsConf it sends an SSLRequest and upgrades to TLS
// first (a server without TLS is ErrNoTLS), then answers the server's auth
// requests and switches until its OK. An ERR is a *ServerError. On
// failure the connection is closed.
func (p *Pending) Login(ctx context.Context, tlsConf *tls.Config, l Login) (*Session, error) {
	s, err := p.login(ctx, tlsConf, l)
	if err != nil {
		p.Conn.Close()
		return nil, err
	}
	return s, nil
}

func (p *Pending) login(ctx context.Context, tlsConf *tls.Config, l Login) (*Session, error) {
	g := p.Greeting
	need := CapProtocol41 | CapSecureConnection | CapPluginAuth
	if tlsConf != nil {
		need |= CapSSL
	}
	if missing := need &^ g.Caps; missing != 0 {
		if missing&CapSSL != 0 {
			return nil, ErrNoTLS
		}
		return nil, fmt.Errorf("the server %q lacks capabilities 0x%x that the login needs (4.1 protocol, pluggable auth)", g.ServerVersion, missing)
	}
	c := l.Client
	caps := upstreamCaps(c.Caps, g.Caps, l.Database, len(c.Attrs) > 0, tlsConf != nil)
	if !l.LocalInfile {
		caps &^= CapLocalFiles
	}
	resp := &HandshakeResponse{Caps: caps, MaxPacket: c.MaxPacket, Charset: c.Charset,
		User: l.User, Database: l.Database, AuthPlugin: l.Plugin, Attrs: c.Attrs}
	if hasExtCaps(caps) && hasExtCaps(g.Caps) && hasExtCaps(c.Caps) {
		resp.ExtCaps = c.ExtCaps & g.ExtCaps
	}
	if resp.Charset == 0 {
		resp.Charset = g.Charset
	}

	stop := deadlineFrom(ctx, p.Conn)
	defer stop()
	conn := p.Conn
	seq := byte(1)
	secure := tlsConf != nil
	if secure {
		if err := WritePacket(conn, seq, resp.MarshalSSLRequest()); err != nil {
			return nil, &ServerProtocolError{Step: "send the TLS request", Err: err}
		}
		seq++
		tc, err := handshake(ctx, conn, tlsConf)
		if err != nil {
			return nil, &TLSError{Err: err}
		}
		conn = tc
	}
	auth, err := authData(l.Plugin, g.Scramble, l.Password, secure)
	if err != nil {
		return nil, err
	}
	resp.AuthData = auth
	payload, err := resp.Marshal()
	if err != nil {
		return nil, err
	}
	if err := WritePacket(conn, seq, payload); err != nil {
		return nil, &ServerProtocolError{Step: "send the login", Err: err}
	}
	for range 4 {
		rseq, p, err := ReadPacket(conn, ResultLimit)
		if err != nil {
			return nil, &ServerProtocolError{Step: "read the login result", Err: err}
		}
		seq = rseq + 1
		switch {
		case IsOK(p):
			return &Session{Conn: conn, OK: p, Caps: caps}, nil
		case len(p) > 0 && p[0] == 0xff:
			return nil, ParseErr(p)
		case len(p) > 1 && p[0] == 0xfe:
			// AuthSwitchRequest: answer with the plugin the server names.
			r := &reader{b: p[1:]}
			plugin := r.cstring(true)
			data := r.rest()
			if n := len(data); n > 0 && data[n-1] == 0 {
				data = data[:n-1]
			}
			if l.OnlyPlugin && plugin != l.Plugin {
				return nil, &UnsupportedPluginError{Plugin: plugin}
			}
			auth, err := authData(plugin, data, l.Password, secure)
			if err != nil {
				return nil, err
			}
			if err := WritePacket(conn, seq, auth); err != nil {
				return nil, &ServerProtocolError{Step: "answer the auth switch", Err: err}
			}
		case len(p) == 2 && p[0] == 0x01 && p[1] == 3:
			// caching_sha2_password: fast auth succeeded; the OK follows.
		case len(p) == 2 && p[0] == 0x01 && p[1] == 4:
			// caching_sha2_password full auth: the password in clear,
			// which only TLS may carry.
			if l.OnlyPlugin {
				return nil, &UnsupportedPluginError{Plugin: PluginCachingSHA2}
			}
			if !secure {
				return nil, errors.New("the server asks for the password in clear without TLS; refused")
			}
			if err := WritePacket(conn, seq, append([]byte(l.Password), 0)); err != nil {
				return nil, &ServerProtocolError{Step: "send the password", Err: err}
			}
		default:
			return nil, &ServerProtocolError{Step: "read the login result", Err: fmt.Errorf("unexpected packet 0x%x of %d bytes", first(p), len(p))}
		}
	}
	return nil, &ServerProtocolError{Step: "log in", Err: errors.New("the server keeps asking for more authentication")}
}

// handshake runs the client side of TLS over conn, bounded by ctx and by
// tlsHandshakeTimeout.
func handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", cfg.ServerName, err)
	}
	return tc, nil
}

func first(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// Abandon ends a connection that will not log in the way a client that
// gives up does: with a login as user (one that does not exist) that
// fails, not a TCP close in the middle of the handshake. MySQL counts a
// broken handshake from a host against max_connect_errors and then blocks
// the host ("Host is blocked", error 1129) until FLUSH HOSTS; a failed
// login counts only as an authentication error. No secret is sent: no
// password, no TLS. It waits at most a second for the server's answer,
// then closes the connection.
func (p *Pending) Abandon(user string) {
	defer p.Conn.Close()
	p.Conn.SetDeadline(time.Now().Add(time.Second))
	r := &HandshakeResponse{Caps: p.Greeting.Caps & (CapProtocol41 | CapSecureConnection | CapPluginAuth | CapLongPassword),
		Charset: p.Greeting.Charset, User: user, AuthPlugin: PluginNativePassword}
	b, err := r.Marshal()
	if err != nil || WritePacket(p.Conn, 1, b) != nil {
		return
	}
	ReadPacket(p.Conn, ResultLimit)
}
