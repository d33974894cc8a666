package postgres

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
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
	// TLS is the verify-full configuration for Host; nil means plaintext
	// (only the emulator's own hop to a local database uses that).
	TLS *tls.Config
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

// baseConfig builds the pgconn configuration shared by every connection to
// u. pgconn insists on configs made by ParseConfig; the empty-ish DSN keeps
// it from reading anything that matters from PG* variables, and every field
// that could come from them is set explicitly below.
func baseConfig(u Upstream) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("pgconn config: %w", err)
	}
	cfg.Host = u.Host
	cfg.Port = uint16(u.Port)
	cfg.TLSConfig = u.TLS
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.KerberosSrvName = ""
	cfg.KerberosSpn = ""
	cfg.SSLNegotiation = ""
	cfg.MinProtocolVersion = "3.0"
	cfg.MaxProtocolVersion = "3.0"
	if u.DialAddress != "" {
		// Dial the tunnel, whatever address pgconn resolved the name to;
		// and do not resolve the name at all: it may not resolve here.
		addr := u.DialAddress
		dialer := &net.Dialer{}
		cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
		cfg.DialFunc = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}
	}
	return cfg, nil
}

// dialAddr is the address a connection to u really goes to.
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
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if l.Check != nil {
		if err := l.Check(ctx, conn); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("hijack upstream connection: %w", err)
	}
	// pgconn reads ahead; anything the server sent after ReadyForQuery would
	// be lost to the relay. Servers send nothing unprompted there, so this
	// only guards the assumption.
	if n := hc.Frontend.ReadBufferLen(); n != 0 {
		hc.Conn.Close()
		return nil, fmt.Errorf("upstream sent %d unexpected bytes after ReadyForQuery", n)
	}
	return hc, nil
}
