package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// MaxLoginMessage bounds each message a server sends during a login
// (pgconn's default is about 1 GiB). Login messages are small: an
// authentication request, parameter statuses, a notice or an error. A
// server that announces more is broken or hostile, and the login fails
// (a *pgproto3.ExceededMaxBodyLenErr) instead of allocating what it
// announced.
const MaxLoginMessage = 1 << 20

// pinnedDSN sets every keyword a PG* environment variable could set, so
// that the process's environment (PGREQUIREAUTH, PGCHANNELBINDING,
// PGSSLCERTMODE, PGCONNECT_TIMEOUT, PGPASSFILE, ...) never changes how a
// login goes; the values that matter are replaced per server and per login
// anyway. PGSERVICE cannot be pinned: pgconn always reads the named
// service, whose settings then sit below these; only a service that does
// not exist fails (in PinnedConfig).
const pinnedDSN = "host=pinned port=5432 user=pinned password=pinned dbname=pinned passfile='' " +
	"connect_timeout=0 sslmode=disable sslkey='' sslcert='' sslcertmode=disable sslrootcert='' sslpassword='' " +
	"sslnegotiation=postgres target_session_attrs=any options='' application_name='' " +
	"min_protocol_version=3.0 max_protocol_version=3.0 channel_binding=prefer require_auth=''"

// PinnedConfig is the pgconn configuration for logins to the server named
// host:port (the name TLS verifies) that nothing in the environment
// changes: pgconn insists on configurations made by ParseConfig, so
// pinnedDSN keeps the environment out and every hook is set here. dial
// opens each connection (pgconn never resolves the name itself: with a
// tunnel it may not resolve here); tlsConf nil means plaintext. The
// caller's context bounds each login (no connect_timeout), and the
// caller sets User, Database, Password and RuntimeParams on a Copy per
// login.
func PinnedConfig(host string, port int, tlsConf *tls.Config, dial func(ctx context.Context) (net.Conn, error)) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(pinnedDSN)
	if err != nil {
		return nil, fmt.Errorf("parse the pinned login configuration: %w", err)
	}
	cfg.Host = host
	cfg.Port = uint16(port)
	cfg.TLSConfig = tlsConf
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.AfterNetConnect = nil
	cfg.OAuthTokenProvider = nil
	cfg.OnNotice = nil
	cfg.OnNotification = nil
	cfg.KerberosSrvName = ""
	cfg.KerberosSpn = ""
	cfg.ConnectTimeout = 0
	cfg.MaxProtocolMessageBodyLen = MaxLoginMessage
	cfg.RuntimeParams = map[string]string{}
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	return cfg, nil
}

// Connect logs in with cfg and hands over the raw connection, ready for
// a byte relay: the caller owns hc.Conn. check, when set, runs on the
// logged-in connection first; its error closes it. The password never
// stays in what is returned, error or not.
func Connect(ctx context.Context, cfg *pgconn.Config, check func(context.Context, *pgconn.PgConn) error) (*pgconn.HijackedConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		// The error carries the config, password included: drop it so no
		// later formatting can reveal it.
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Config != nil {
			ce.Config.Password = ""
		}
		return nil, err
	}
	if check != nil {
		if err := check(ctx, conn); err != nil {
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
