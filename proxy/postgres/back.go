package postgres

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// Upstream says where and how to log in upstream.
type Upstream struct {
	// Host and Port name the server: TLS verifies Host, and an IAM token is
	// signed for Host:Port.
	Host string
	Port int
	// DialAddress, when set, is the host:port actually dialed (an SSH or SSM
	// tunnel, a local emulator); the name checks still use Host.
	DialAddress string
	// Trust supplies the TLS settings (mode, names, bundle: failed
	// handshakes are explained with them) and the configuration for each
	// new login, so that a refreshed CA bundle applies without a restart.
	// A trust in mode disable is plaintext to a loopback address; no trust
	// at all is plaintext too, which only tests against a local server use
	// (the emulator logs in to its database with pgwire directly).
	Trust *tlsca.Trust
	// Dial, when set, opens the TCP connection to the dial address instead
	// of a plain net.Dialer: an in-process tunnel, or a test that needs to
	// shape the connection (slow writes, faults). With --tls-mode disable
	// the connection it returns must have a loopback TCP peer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// TCPTimeout bounds how long the network path to the upstream may be
	// dead before a session's reads and writes fail (see
	// proxy.UpstreamDialer; 0: its default, negative: off). Not used with
	// Dial.
	TCPTimeout time.Duration
}

// CurrentTLS is the TLS settings and configuration for a new connection
// (no configuration: plaintext).
func (u Upstream) CurrentTLS() (tlsca.Upstream, *tls.Config) {
	if u.Trust != nil {
		return u.Trust.Current()
	}
	return tlsca.Upstream{Host: u.Host}, nil
}

// Login is one upstream login.
type Login struct {
	User     string
	Database string
	Password string
	Params   map[string]string // runtime parameters from the client
	// Check, when set, runs on the logged-in connection before it is
	// handed over; an error closes it.
	Check func(ctx context.Context, c *pgconn.PgConn) error
}

// Dialer logs in to one upstream and hands over the raw connection.
type Dialer struct {
	up   Upstream
	base *pgconn.Config
	warm *proxy.Warm[net.Conn] // connections through TLS already; nil: none
}

// NewDialer prepares logins to u.
func NewDialer(u Upstream) (*Dialer, error) {
	base, err := baseConfig(u)
	if err != nil {
		return nil, err
	}
	return &Dialer{up: u, base: base}, nil
}

// Upstream is what d dials.
func (d *Dialer) Upstream() Upstream { return d.up }

// baseConfig builds the pgconn configuration shared by every connection to
// u: pinned against the environment (pgwire.PinnedConfig), dialing the
// tunnel when there is one, else the endpoint.
func baseConfig(u Upstream) (*pgconn.Config, error) {
	addr := u.DialAddr()
	dial := u.Dial
	if dial == nil {
		dial = proxy.DialUpstream(u.TCPTimeout)
	}
	// Plaintext (--tls-mode disable): tlsca.Upstream.Check allowed only
	// loopback names at start; here the address actually connected to must
	// be loopback too, whatever the name resolves to now.
	ts, conf := u.CurrentTLS() // Login takes the trust's current one
	if conf == nil && ts.Mode == tlsca.Disable {
		if u.Dial == nil {
			dial = tlsca.PlaintextDialer(nil)
		} else {
			dial = tlsca.CheckPlaintextDial(u.Dial)
		}
	}
	cfg, err := pgwire.PinnedConfig(u.Host, u.Port, conf, func(ctx context.Context) (net.Conn, error) { return dial(ctx, addr) })
	if err != nil {
		return nil, fmt.Errorf("cannot prepare upstream logins (is a PG* variable in the proxy's environment invalid?): %w", err)
	}
	return cfg, nil
}

// DialAddr is the address a connection to u goes to.
func (u Upstream) DialAddr() string {
	if u.DialAddress != "" {
		return u.DialAddress
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
}

// Login logs in upstream and takes over the raw connection: the caller owns
// hc.Conn and relays it.
func (d *Dialer) Login(ctx context.Context, l Login) (*pgconn.HijackedConn, error) {
	cfg := d.base.Copy()
	cfg.User = l.User
	cfg.Database = l.Database
	cfg.Password = l.Password
	cfg.RuntimeParams = l.Params
	_, cfg.TLSConfig = d.up.CurrentTLS()
	return connectWarm(ctx, cfg, d.warm.Take, d.warm.Stale, l.Check)
}
