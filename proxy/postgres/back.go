package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
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
	// at all is plaintext too, which only the emulator's own hop to its
	// local database uses.
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

// maxLoginMessage bounds each message the upstream sends during the login
// (pgconn's default is about 1 GiB). Login messages are small: an
// authentication request, parameter statuses, a notice or an error. A
// server that announces more is broken or hostile, and the login fails
// instead of the proxy allocating what it announced.
const maxLoginMessage = 1 << 20

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
	// handed over; an error closes it (the emulator checks rds_iam here).
	Check func(ctx context.Context, c *pgconn.PgConn) error
}

// Dialer logs in to one upstream and hands over the raw connection.
type Dialer struct {
	up   Upstream
	base *pgconn.Config
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

// pinnedDSN sets every keyword a PG* environment variable could set, so
// that the proxy's own environment (PGREQUIREAUTH, PGCHANNELBINDING,
// PGSSLCERTMODE, PGCONNECT_TIMEOUT, PGPASSFILE, ...) never changes how it
// logs in upstream; the values that matter are replaced per upstream and per
// connection anyway. PGSERVICE cannot be pinned: pgconn always reads the
// named service, whose settings then sit below these; only a service that
// does not exist makes the proxy refuse to start, with a message that says
// so.
const pinnedDSN = "host=pinned port=5432 user=pinned password=pinned dbname=pinned passfile='' " +
	"connect_timeout=0 sslmode=disable sslkey='' sslcert='' sslcertmode=disable sslrootcert='' sslpassword='' " +
	"sslnegotiation=postgres target_session_attrs=any options='' application_name='' " +
	"min_protocol_version=3.0 max_protocol_version=3.0 channel_binding=prefer require_auth=''"

// baseConfig builds the pgconn configuration shared by every connection to
// u. pgconn insists on configs made by ParseConfig; pinnedDSN keeps the
// environment out, and every hook is set explicitly below.
func baseConfig(u Upstream) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(pinnedDSN)
	if err != nil {
		return nil, fmt.Errorf("cannot prepare upstream logins (is a PG* variable in the proxy's environment invalid?): %w", err)
	}
	cfg.Host = u.Host
	cfg.Port = uint16(u.Port)
	_, cfg.TLSConfig = u.CurrentTLS() // Login takes the trust's current one
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.AfterNetConnect = nil
	cfg.OAuthTokenProvider = nil
	cfg.OnNotice = nil
	cfg.OnNotification = nil
	cfg.KerberosSrvName = ""
	cfg.KerberosSpn = ""
	cfg.ConnectTimeout = 0 // the caller's context bounds the login
	cfg.MaxProtocolMessageBodyLen = maxLoginMessage
	cfg.RuntimeParams = map[string]string{}
	// Dial the tunnel when there is one, else the endpoint; never resolve
	// the name through pgconn (with a tunnel it may not resolve here).
	addr := u.DialAddr()
	dial := u.Dial
	if dial == nil {
		dial = proxy.DialUpstream(u.TCPTimeout)
	}
	// Plaintext (--tls-mode disable): tlsca.Upstream.Check allowed only
	// loopback names at start; here the address actually connected to must
	// be loopback too, whatever the name resolves to now.
	if ts, conf := u.CurrentTLS(); conf == nil && ts.Mode == tlsca.Disable {
		if u.Dial == nil {
			dial = tlsca.PlaintextDialer(nil)
		} else {
			dial = tlsca.CheckPlaintextDial(u.Dial)
		}
	}
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.DialFunc = func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, addr) }
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
	if d.up.Trust != nil {
		_, cfg.TLSConfig = d.up.Trust.Current()
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		// The error carries the config, password (the token) included:
		// drop it so no later formatting can reveal it.
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Config != nil {
			ce.Config.Password = ""
		}
		return nil, err
	}
	if l.Check != nil {
		if err := l.Check(ctx, conn); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	// pgconn may still have a read in flight on the connection: around each
	// write that could block (the startup message, the password) it arms a
	// 15 ms timer that starts a background reader, and stopping that reader
	// does not interrupt the read it is in. On a loaded machine the write
	// is slow, the reader takes the login's answer and goes back to read
	// again; after a bare Hijack that read would take the server's first
	// reply away from the relay, and the session would hang. SyncConn waits
	// for the reader to stop (pinging the server when it must) and leaves
	// nothing buffered; pgconn's doc for Hijack says to call it right
	// before.
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("settle the upstream connection before relaying: %w", err)
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("hijack upstream connection: %w", err)
	}
	hc.Config.Password = ""
	// SyncConn left the read buffer empty; this only guards that contract,
	// since anything buffered here would be lost to the relay.
	if n := hc.Frontend.ReadBufferLen(); n != 0 {
		hc.Conn.Close()
		return nil, fmt.Errorf("the upstream sent %d bytes after ReadyForQuery before any query; not relaying a session that may be out of step", n)
	}
	return hc, nil
}
