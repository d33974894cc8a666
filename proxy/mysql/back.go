package mysql

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
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
	// is used as is; both nil means plaintext, which New refuses.
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
	wire     *mywire.Pending
	tls      *tls.Config // for this connection's login, fixed at dial time
	Greeting *mywire.Greeting
	greeted  time.Time // when the greeting was read: the server's connect_timeout runs from then
	warm     bool      // it waited among the pre-warmed connections
	at       string    // the Aurora instance endpoint dialed (route.go), "" for the configured one
}

// Dial connects to u and reads its greeting; ctx bounds both. An ERR in
// place of the greeting is a *mywire.ServerError.
func Dial(ctx context.Context, u Upstream) (*Pending, error) {
	c, err := proxy.DialUpstream(u.TCPTimeout)(ctx, u.DialAddr())
	if err != nil {
		return nil, err
	}
	w, err := mywire.ReadGreeting(ctx, c)
	if err != nil {
		return nil, err
	}
	_, tlsConf := u.currentTLS()
	return &Pending{wire: w, tls: tlsConf, Greeting: w.Greeting, greeted: time.Now()}, nil
}

// Close drops a connection that will not log in.
func (p *Pending) Close() error { return p.wire.Conn.Close() }

// abandonUser is the user an abandoned login names; no such user exists.
const abandonUser = "rds-iam-proxy-abandoned"

// Abandon ends a connection that will not log in with a failed login
// rather than a broken handshake (see mywire.Pending.Abandon): MySQL
// blocks a host after max_connect_errors (100 on RDS) broken handshakes,
// so a health probe, a port scan or a client whose credentials are broken
// never gets the proxy's address blocked.
func (p *Pending) Abandon() { p.wire.Abandon(abandonUser) }

// Login upgrades the connection to TLS (when the Upstream has a TLS
// configuration) and logs in (see mywire.Pending.Login). On failure the
// connection is closed.
func (p *Pending) Login(ctx context.Context, l mywire.Login) (*mywire.Session, error) {
	return p.wire.Login(ctx, p.tls, l)
}
