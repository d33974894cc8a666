package mysql

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/conncut"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Auth plugins the login knows.
const (
	PluginClearPassword  = "mysql_clear_password"  // IAM tokens: RDS checks the token in clear, over TLS
	PluginNativePassword = "mysql_native_password" // what the proxy offers clients; the emulator's backend login
	PluginCachingSHA2    = "caching_sha2_password" // MySQL 8's default, for an emulator in front of MySQL 8
)

// Upstream says where and how to log in upstream.
type Upstream struct {
	// Host and Port name the server: TLS verifies Host, and an IAM token is
	// signed for Host:Port.
	Host string
	Port int
	// DialAddress, when set, is the host:port dialed instead (a tunnel, the
	// emulator); the name checks still use Host.
	DialAddress string
	// Trust supplies the TLS settings and configuration for each new login
	// (so a refreshed CA bundle applies without a restart). When nil, TLS
	// is used as is; both nil means plaintext, which only the emulator's
	// hop to a local server uses.
	Trust *tlsca.Trust
	TLS   *tls.Config
	// TCPTimeout bounds how long the network path to the upstream may be
	// dead before a session's reads and writes fail (see
	// proxy.UpstreamDialer; 0: its default, negative: off).
	TCPTimeout time.Duration
}

// currentTLS is the TLS settings and configuration for a new connection.
func (u Upstream) currentTLS() (tlsca.Upstream, *tls.Config) {
	if u.Trust != nil {
		return u.Trust.Current()
	}
	return tlsca.Upstream{Host: u.Host, Mode: tlsca.VerifyFull}, u.TLS
}

// DialAddr is the address dialed.
func (u Upstream) DialAddr() string {
	if u.DialAddress != "" {
		return u.DialAddress
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
}

// Pending is an upstream connection whose greeting has been read, waiting
// for the client's answer to decide how to log in.
type Pending struct {
	conn     net.Conn
	tls      *tls.Config // for this connection's login, fixed at dial time
	Greeting *Greeting
}

// Dial connects to u and reads its greeting; ctx bounds both.
func Dial(ctx context.Context, u Upstream) (*Pending, error) {
	c, err := proxy.DialUpstream(u.TCPTimeout)(ctx, u.DialAddr())
	if err != nil {
		return nil, err
	}
	stop := deadlineFrom(ctx, c)
	defer stop()
	_, p, err := readPacket(c, greetingLimit)
	if err != nil {
		c.Close()
		return nil, &UpstreamProtocolError{Step: "read the server's greeting", Err: err}
	}
	g, err := ParseGreeting(p)
	if err != nil {
		c.Close()
		var se *ServerError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, &UpstreamProtocolError{Step: "read the server's greeting", Err: err}
	}
	_, tlsConf := u.currentTLS()
	return &Pending{conn: c, tls: tlsConf, Greeting: g}, nil
}

// Close drops a connection that will not log in.
func (p *Pending) Close() error { return p.conn.Close() }

// abandonUser is the user an abandoned login names; no such user exists.
const abandonUser = "rds-iam-proxy-abandoned"

// Abandon ends a connection that will not log in the way a client that
// gives up does: with a login that fails, not a TCP close in the middle of
// the handshake. MySQL counts a broken handshake from a host against
// max_connect_errors (100 on RDS) and then blocks the host ("Host is
// blocked", error 1129) until FLUSH HOSTS; a failed login counts only as an
// authentication error. So a health probe, a port scan or a client whose
// credentials are broken never gets the proxy's address blocked. No secret
// is sent: an unknown user, no password, no TLS. It waits at most a second
// for the server's answer.
func (p *Pending) Abandon() {
	defer p.conn.Close()
	p.conn.SetDeadline(time.Now().Add(time.Second))
	r := &HandshakeResponse{Caps: p.Greeting.Caps & (CapProtocol41 | CapSecureConnection | CapPluginAuth | CapLongPassword),
		Charset: p.Greeting.Charset, User: abandonUser, AuthPlugin: PluginNativePassword}
	b, err := r.Marshal()
	if err != nil || writePacket(p.conn, 1, b) != nil {
		return
	}
	readPacket(p.conn, resultLimit)
}

// UpstreamProtocolError is an upstream that broke off or answered
// something that is not MySQL during the login.
type UpstreamProtocolError struct {
	Step string
	Err  error
}

func (e *UpstreamProtocolError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *UpstreamProtocolError) Unwrap() error { return e.Err }

// Login is one upstream login.
type Login struct {
	User     string
	Database string
	Password string // the IAM token, or the emulator's backend password
	Plugin   string // the auth plugin to answer with first
	// OnlyPlugin refuses a switch to any other plugin (an IAM login: RDS
	// switches IAM users to mysql_clear_password; any other plugin means
	// the user is not an IAM user, and the token must not be sent hashed
	// as a password).
	OnlyPlugin bool
	// Client is the client's answer to the greeting: its capabilities,
	// character set, max packet size and connection attributes go upstream.
	Client *HandshakeResponse
	// LocalInfile keeps CLIENT_LOCAL_FILES when the client and the server
	// both have it. Off, it is never sent upstream, so the server refuses
	// LOAD DATA LOCAL INFILE instead of asking the client for a file: a
	// hostile or compromised server could otherwise ask for any file the
	// client can read, whatever the query was.
	LocalInfile bool
}

// Session is a logged-in upstream connection, ready to relay.
type Session struct {
	Conn net.Conn
	// OK is the server's final OK payload, to forward to the client.
	OK []byte
}

// Login upgrades the connection to TLS (when the Upstream has a TLS
// configuration) and logs in. On failure the connection is closed.
func (p *Pending) Login(ctx context.Context, l Login) (*Session, error) {
	s, err := p.login(ctx, l)
	if err != nil {
		p.conn.Close()
		return nil, err
	}
	return s, nil
}

func (p *Pending) login(ctx context.Context, l Login) (*Session, error) {
	g := p.Greeting
	need := CapProtocol41 | CapSecureConnection | CapPluginAuth
	if p.tls != nil {
		need |= CapSSL
	}
	if missing := need &^ g.Caps; missing != 0 {
		if missing&CapSSL != 0 {
			return nil, errNoTLS
		}
		return nil, fmt.Errorf("the server %q lacks capabilities 0x%x that an IAM login needs (4.1 protocol, pluggable auth)", g.ServerVersion, missing)
	}
	c := l.Client
	caps := upstreamCaps(c.Caps, g.Caps, l.Database, len(c.Attrs) > 0, p.tls != nil)
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

	stop := deadlineFrom(ctx, p.conn)
	defer stop()
	conn := p.conn
	seq := byte(1)
	if p.tls != nil {
		if err := writePacket(conn, seq, resp.MarshalSSLRequest()); err != nil {
			return nil, &UpstreamProtocolError{Step: "send the TLS request", Err: err}
		}
		seq++
		tc, err := tlsca.Handshake(ctx, conn, p.tls)
		if err != nil {
			return nil, &TLSError{Err: err}
		}
		conn = tc
	}
	secure := p.tls != nil
	auth, err := authData(l.Plugin, g.Scramble, l.Password, secure)
	if err != nil {
		return nil, err
	}
	resp.AuthData = auth
	payload, err := resp.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writePacket(conn, seq, payload); err != nil {
		return nil, &UpstreamProtocolError{Step: "send the login", Err: err}
	}
	for range 4 {
		rseq, p, err := readPacket(conn, resultLimit)
		if err != nil {
			return nil, &UpstreamProtocolError{Step: "read the login result", Err: err}
		}
		seq = rseq + 1
		switch {
		case isOK(p):
			return &Session{Conn: conn, OK: p}, nil
		case len(p) > 0 && p[0] == 0xff:
			return nil, parseErrPacket(p)
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
			if err := writePacket(conn, seq, auth); err != nil {
				return nil, &UpstreamProtocolError{Step: "answer the auth switch", Err: err}
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
			if err := writePacket(conn, seq, append([]byte(l.Password), 0)); err != nil {
				return nil, &UpstreamProtocolError{Step: "send the password", Err: err}
			}
		default:
			return nil, &UpstreamProtocolError{Step: "read the login result", Err: fmt.Errorf("unexpected packet 0x%x of %d bytes", first(p), len(p))}
		}
	}
	return nil, &UpstreamProtocolError{Step: "log in", Err: errors.New("the server keeps asking for more authentication")}
}

func first(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// errNoTLS is an upstream that does not offer TLS: an IAM token must never
// travel in clear.
var errNoTLS = errors.New("the server does not offer TLS")

// TLSError is a failed TLS handshake with the upstream.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// authData answers plugin's challenge with password.
func authData(plugin string, scramble []byte, password string, secure bool) ([]byte, error) {
	switch plugin {
	case PluginClearPassword:
		if !secure {
			return nil, errors.New("refusing to send a password in clear without TLS (mysql_clear_password)")
		}
		return append([]byte(password), 0), nil
	case PluginNativePassword:
		return scrambleNative(scramble, password), nil
	case PluginCachingSHA2:
		return scrambleSHA256(scramble, password), nil
	}
	return nil, &UnsupportedPluginError{Plugin: plugin}
}

// UnsupportedPluginError is a server that asks for an auth plugin the
// proxy cannot answer.
type UnsupportedPluginError struct{ Plugin string }

func (e *UnsupportedPluginError) Error() string {
	return fmt.Sprintf("the server asks for the auth plugin %q", e.Plugin)
}

// deadlineFrom applies ctx's deadline to c for the duration of a step, and
// cuts the step short when ctx is cancelled. After stop returns the cut has
// either not happened or has finished (see conncut), so the caller's own
// deadline changes are not overwritten by a late one.
func deadlineFrom(ctx context.Context, c net.Conn) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cut := conncut.All(ctx, c)
	return func() { cut.Stop() }
}
