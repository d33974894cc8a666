package launch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/dsql"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// PostgresUpstream is the upstream as the Postgres engine dials it.
func (u *Upstream) PostgresUpstream() postgres.Upstream {
	return postgres.Upstream{Host: u.Endpoint.Host, Port: u.Endpoint.Port, DialAddress: u.Config.DialAddress,
		Trust: u.Trust, TCPTimeout: time.Duration(u.Config.UpstreamTCPTimeout)}
}

// MySQLUpstream is the upstream as the MySQL engine dials it.
func (u *Upstream) MySQLUpstream() mysql.Upstream {
	return mysql.Upstream{Host: u.Endpoint.Host, Port: u.Endpoint.Port, DialAddress: u.Config.DialAddress,
		Trust: u.Trust, TCPTimeout: time.Duration(u.Config.UpstreamTCPTimeout)}
}

// Login is a login that checks the upstream, not one a client asked for.
type Login struct {
	User     string // the database user, case-sensitive
	Database string // "" for the server's default
	// Application names the login in the server's views (Postgres'
	// application_name).
	Application string
}

// Login signs a fresh token for l.User and logs in with it through the
// engine's own upstream login, the one the proxy runs for every client
// (Postgres: pgconn with the proxy's pinned settings, SyncConn, Hijack;
// MySQL: the greeting, TLS inside the handshake, mysql_clear_password),
// then ends the session politely. doctor logs in this way, so that a
// login doctor passes is a login the proxy makes. The error is the
// engine's own (a *pgconn.PgError, a *mywire.ServerError, a TLS
// verification error, ...), for the caller to explain.
func (u *Upstream) Login(ctx context.Context, l Login) error {
	if u.Tokens == nil || u.Trust == nil {
		return errors.New("launch: Login before the upstream is resolved")
	}
	token, err := u.Token(ctx, l.User)
	if err != nil {
		return err
	}
	if u.Config.Engine == config.MySQL {
		return u.mysqlLogin(ctx, l, token)
	}
	if u.Config.Engine == config.DSQL {
		l.Database = dsql.Database // a DSQL cluster's one database
	}
	return u.postgresLogin(ctx, l, token)
}

func (u *Upstream) postgresLogin(ctx context.Context, l Login, token string) error {
	d, err := postgres.NewDialer(u.PostgresUpstream())
	if err != nil {
		return err
	}
	params := map[string]string{}
	if l.Application != "" {
		params["application_name"] = l.Application
	}
	hc, err := d.Login(ctx, postgres.Login{User: l.User, Database: l.Database, Password: token, Params: params})
	if err != nil {
		return err
	}
	// Back to a pgconn only to end the session with a Terminate, as a
	// client does, rather than a bare close the server logs as unexpected.
	conn, err := pgconn.Construct(hc)
	if err != nil {
		hc.Conn.Close()
		return fmt.Errorf("end the check's session: %w", err)
	}
	return conn.Close(ctx)
}

// checkClientCaps are the capabilities of the client the check's MySQL
// login stands for: the 4.1 protocol with pluggable auth and lenenc auth
// data (a token is longer than 250 bytes), nothing that changes framing.
const checkClientCaps = mywire.CapLongPassword | mywire.CapProtocol41 | mywire.CapSecureConnection |
	mywire.CapPluginAuth | mywire.CapPluginAuthLenenc | mywire.CapTransactions

// comQuit is MySQL's COM_QUIT in a packet of its own (sequence 0).
var comQuit = []byte{1, 0, 0, 0, 0x01}

func (u *Upstream) mysqlLogin(ctx context.Context, l Login, token string) error {
	p, err := mysql.Dial(ctx, u.MySQLUpstream())
	if err != nil {
		return err
	}
	s, err := p.Login(ctx, mywire.Login{User: l.User, Database: l.Database, Password: token,
		Plugin: mywire.PluginClearPassword, OnlyPlugin: true,
		Client: &mywire.HandshakeResponse{Caps: checkClientCaps, MaxPacket: 16 << 20}})
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	// COM_QUIT, as a client ends a session: a bare close counts as an
	// aborted connection on the server.
	s.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.Conn.Write(comQuit)
	return nil
}
