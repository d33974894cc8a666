package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// PostgresOptions configure an emulated RDS for PostgreSQL instance in front
// of a real PostgreSQL server.
type PostgresOptions struct {
	// Endpoint is the RDS-like name the instance answers to: its TLS
	// certificate names it and tokens must be signed for it. Default
	// "emulated-pg.c0ffee123456.REGION.rds.amazonaws.com".
	Endpoint string
	// Port is the port in the endpoint (and so in tokens); default 5432,
	// whatever port the emulator really listens on: clients reach it with a
	// dial address, as they would through a tunnel.
	Port int
	// ResourceID is the DbiResourceId in the dbuser ARN; default
	// "db-EMULATEDPOSTGRES0001".
	ResourceID string
	// Listen is the address to listen on; default 127.0.0.1:0.
	Listen string
	// Backend is the host:port of the real PostgreSQL server. The emulator
	// logs in to it as the client's user with BackendPassword (empty: the
	// backend must trust the emulator's address, e.g. "host all all
	// 127.0.0.1/32 trust"), so the backend sees the real user, as on RDS.
	Backend         string
	BackendPassword string
	// Certificate, when set, is served instead of a certificate issued by
	// the CA for Endpoint: tests use it to serve an expired certificate, one
	// for another name, or one from another (or an expired) CA.
	Certificate *tls.Certificate
	Logger      *slog.Logger
}

// Postgres is a running emulated RDS for PostgreSQL front.
type Postgres struct {
	*instance
	opts    PostgresOptions
	backend *pgconn.Config // logins to Backend, copied per client
}

// StartPostgres starts an RDS IAM front for PostgreSQL. Like RDS with IAM
// database authentication enabled, it accepts only TLS, asks for a cleartext
// password, checks it as an IAM token (signature, expiry, host, port,
// region, user, the caller's rds-db:connect permission), requires the user
// to be a member of rds_iam, and answers every token failure with
// `PAM authentication failed for user "U"`, logging the real reason.
func (a *AWS) StartPostgres(ca *CA, o PostgresOptions) (*Postgres, error) {
	if o.Backend == "" {
		return nil, errors.New("emulator: PostgresOptions.Backend is required")
	}
	backend, err := backendConfig(o.Backend)
	if err != nil {
		return nil, err
	}
	inst, err := a.newInstance(ca, instanceOptions{endpoint: o.Endpoint, port: o.Port, resourceID: o.ResourceID,
		listen: o.Listen, cert: o.Certificate, log: o.Logger, kind: "rds-postgres",
		defaultName: "emulated-pg", defaultPort: 5432, defaultResourceID: "db-EMULATEDPOSTGRES0001"})
	if err != nil {
		return nil, err
	}
	p := &Postgres{instance: inst, opts: o, backend: backend}
	p.serve(p.serveConn)
	return p, nil
}

// backendConfig prepares plaintext logins to the real server at addr, as
// the proxy's own logins are prepared: nothing in the environment (PG*
// variables) changes them.
func backendConfig(addr string) (*pgconn.Config, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: PostgresOptions.Backend %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("emulator: PostgresOptions.Backend %q: the port is not a number", addr)
	}
	var d net.Dialer
	cfg, err := pgwire.PinnedConfig(host, port, nil, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) })
	if err != nil {
		return nil, fmt.Errorf("emulator: prepare backend logins: %w", err)
	}
	return cfg, nil
}

// serveConn serves one client.
func (p *Postgres) serveConn(ctx context.Context, c net.Conn) {
	hctx, cancel := context.WithTimeout(ctx, pgHandshakeLimit)
	defer cancel()
	log := p.log.With("client", c.RemoteAddr().String())

	hello := readPgHello(c, p.tls, log)
	if hello == nil {
		return
	}
	conn := hello.Conn
	if hello.Cancel != nil {
		// Backend keys are passed through unchanged, as on RDS, so a cancel
		// goes to the real server with the same key.
		conn.Close()
		_, onTLS := conn.(*tls.Conn)
		if err := pgwire.SendCancel(hctx, p.opts.Backend, nil, *hello.Cancel); err != nil {
			log.Warn("cancel not delivered", "err", err)
			return
		}
		log.Info("cancel request forwarded", "tls", onTLS, "backend_pid", hello.Cancel.PID)
		return
	}
	st := hello.Startup
	user := st.User()
	log = log.With("user", user)
	if err := pgwire.WriteNegotiation(conn, st); err != nil {
		return
	}
	// RDS picks the authentication method from pg_hba before asking for a
	// password: only rds_iam members go to PAM (the token); anyone else gets
	// password authentication, which a token never passes. So the backend
	// login (which checks membership) comes first, the token check second.
	login := p.backend.Copy()
	login.User, login.Database, login.Password, login.RuntimeParams = user, st.Database(), p.opts.BackendPassword, st.RuntimeParams()
	hc, loginErr := pgwire.Connect(hctx, login, checkRDSIAM)
	if loginErr == nil {
		defer hc.Conn.Close()
	}
	token, err := pgwire.RequestPassword(conn)
	if err != nil {
		log.Info("no password", "err", err)
		return
	}
	if loginErr != nil {
		p.loginFailed(log, conn, user, loginErr)
		return
	}
	if !p.IAMAuthEnabled() {
		// Without IAM auth, RDS's pg_hba has no pam line for rds_iam: the
		// token is checked as a password, which it never is.
		log.Warn("login refused: IAM database authentication is not enabled on this instance")
		pgwire.WriteServerError(conn, "FATAL", "28P01", fmt.Sprintf("password authentication failed for user %q", user))
		return
	}
	caller, err := p.verifyToken(token, user)
	if err != nil {
		log.Warn("IAM token rejected", "reason", err.Error())
		pgwire.WriteServerError(conn, "FATAL", "28P01", fmt.Sprintf("PAM authentication failed for user %q", user)+competingSuffix(err))
		return
	}
	log = log.With("caller", caller.ARN)

	greeting := &pgwire.Greeting{Params: hc.ParameterStatuses, TxStatus: hc.TxStatus,
		Key: pgwire.CancelKey{PID: hc.PID, Secret: hc.SecretKey}}
	if err := pgwire.WriteGreeting(conn, greeting); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	log.Info("IAM login accepted")
	relay(ctx, conn, hc.Conn, relayLinger)
}

// errNotIAMUser means the user exists upstream but is not in rds_iam.
var errNotIAMUser = errors.New("not a member of rds_iam")

// checkRDSIAM requires the login user to be a member of rds_iam, which is
// what routes a login to IAM (PAM) authentication on RDS.
func checkRDSIAM(ctx context.Context, c *pgconn.PgConn) error {
	res := c.ExecParams(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') AND pg_has_role(session_user, 'rds_iam', 'MEMBER')",
		nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("check rds_iam membership: %w", res.Err)
	}
	if len(res.Rows) != 1 || string(res.Rows[0][0]) != "t" {
		return errNotIAMUser
	}
	return nil
}

// loginFailed answers like RDS: a user outside rds_iam (or unknown) falls
// to password authentication, which a token never passes; other server
// errors (no such database) pass through.
func (p *Postgres) loginFailed(log *slog.Logger, c net.Conn, user string, err error) {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, errNotIAMUser),
		errors.As(err, &pgErr) && pgErr.Code == "28000" && strings.Contains(pgErr.Message, "does not exist"):
		log.Warn("login refused: user is not an IAM user (not in rds_iam, or unknown)", "err", err)
		pgwire.WriteServerError(c, "FATAL", "28P01", fmt.Sprintf("password authentication failed for user %q", user))
	case errors.As(err, &pgErr):
		log.Warn("backend refused the login", "err", err)
		pgwire.WriteServerError(c, pgErr.Severity, pgErr.Code, pgErr.Message)
	default:
		log.Error("backend unreachable", "err", err)
		pgwire.WriteServerError(c, "FATAL", "08006", "the database system is not reachable")
	}
}
