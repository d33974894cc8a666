package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// TokenSource builds IAM tokens and says whose credentials sign them.
// *authtoken.Source implements it.
type TokenSource interface {
	Token(ctx context.Context, host string, port int, region, user string) (string, error)
	Identity(ctx context.Context) (authtoken.Identity, error)
}

// Config configures a Postgres proxy for one upstream.
type Config struct {
	Upstream Upstream // TLS must be set: IAM tokens only travel over TLS
	Region   string   // the DB's region, for signing
	// DBUser, when set, is the upstream user for every client whatever
	// user the client names.
	DBUser string
	Tokens TokenSource
	// CABundle says where the trusted CAs came from, for error messages.
	CABundle string
	// HandshakeTimeout bounds everything before the relay: reading the
	// client's startup, building the token, the upstream login. Default 30s.
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds the upstream dial, TLS and login. Default 15s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// Proxy accepts Postgres clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg     Config
	dialer  *Dialer
	cancels *cancelMap
	log     *slog.Logger
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstream.TLS == nil {
		return nil, errors.New("postgres proxy: upstream TLS configuration is required")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("postgres proxy: no token source")
	}
	if cfg.Region == "" {
		return nil, errors.New("postgres proxy: no region")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer, err := NewDialer(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	return &Proxy{cfg: cfg, dialer: dialer, cancels: newCancelMap(), log: log.With("engine", "postgres", "upstream", cfg.Upstream.Host)}, nil
}

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	start := time.Now()
	defer client.Close()
	log := p.log.With("client", client.RemoteAddr().String())

	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	client.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))

	hello, err := ReadHello(client, FrontOptions{})
	if err != nil {
		p.fail(log, client, err, start)
		return
	}
	if hello.Cancel != nil {
		p.forwardCancel(hctx, log, client, *hello.Cancel)
		return
	}
	st := hello.Startup
	user := st.User()
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	log = log.With("user", user, "database", st.Database())
	if st.Params["replication"] != "" && st.Params["replication"] != "false" && st.Params["replication"] != "off" {
		p.fail(log, client, &Error{Code: CodeFeatureNotSupported, Reason: ReasonProtocol,
			Message: "replication connections cannot use IAM authentication on RDS: use a password user for replication"}, start)
		return
	}

	up, err := p.login(hctx, user, st)
	if err != nil {
		p.fail(log, client, p.explain(hctx, user, err), start)
		return
	}
	upstreamKey := CancelKey{PID: up.PID, Secret: up.SecretKey}
	key, forget, err := p.cancels.register(p.cfg.Upstream, upstreamKey)
	if err != nil {
		up.Conn.Close()
		p.fail(log, client, &Error{Code: CodeConnectionFailure, Reason: ReasonProtocol, Message: "internal error", Err: err}, start)
		return
	}
	defer forget()
	greeting := &Greeting{Params: up.ParameterStatuses, Key: key, TxStatus: up.TxStatus, Negotiate: Negotiation(st)}
	if err := WriteGreeting(client, greeting); err != nil {
		up.Conn.Close()
		log.Info("client went away during login", "err", err)
		return
	}
	client.SetDeadline(time.Time{})
	up.Conn.SetDeadline(time.Time{})
	log.Debug("connected", "upstream_pid", up.PID, "handshake", time.Since(start))

	var stats proxy.Stats
	rerr := proxy.Relay(ctx, client, up.Conn, &stats, 0)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond), "bytes_from_client", stats.FromClient.Load(), "bytes_from_upstream", stats.FromUpstream.Load()}
	if rerr != nil {
		log.Info("connection ended", append(attrs, "outcome", "error", "err", rerr)...)
		return
	}
	log.Info("connection ended", append(attrs, "outcome", "ok")...)
}

// login builds a token for user and logs in upstream with it.
func (p *Proxy) login(ctx context.Context, user string, st *Startup) (*pgconn.HijackedConn, error) {
	tok, err := p.cfg.Tokens.Token(ctx, p.cfg.Upstream.Host, p.cfg.Upstream.Port, p.cfg.Region, user)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	return p.dialer.Login(cctx, Login{User: user, Database: st.Database(), Password: tok, Params: st.RuntimeParams()})
}

// forwardCancel sends a client's CancelRequest to the upstream backend its
// key maps to. The client's socket is closed first, as PostgreSQL does; an
// unknown key is dropped silently, also as PostgreSQL does.
func (p *Proxy) forwardCancel(ctx context.Context, log *slog.Logger, client net.Conn, k CancelKey) {
	client.Close()
	t, ok := p.cancels.lookup(k)
	if !ok {
		log.Info("cancel request with an unknown key ignored")
		return
	}
	if err := SendCancel(ctx, t.upstream.DialAddr(), t.upstream.TLS, t.key); err != nil {
		log.Warn("cancel request not delivered", "err", err)
		return
	}
	log.Info("cancel request forwarded", "upstream_pid", t.key.PID)
}

// fail tells the client why its connection cannot go on, and logs it.
func (p *Proxy) fail(log *slog.Logger, client net.Conn, err error, start time.Time) {
	var pe *Error
	if !errors.As(err, &pe) {
		// A read error on the handshake: the client went away or sent
		// nothing in time; there is no one to answer.
		if isTimeout(err) {
			log.Info("handshake timed out", "after", time.Since(start).Round(time.Millisecond))
			return
		}
		log.Info("client went away during handshake", "err", err)
		return
	}
	log.Warn("connection refused", "reason", pe.Reason, "code", pe.Code, "err", pe.Error())
	client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if writeError(client, pe) == nil {
		lingerClose(client)
	}
}

// lingerClose half-closes c and drains what the client still sends for a
// moment before the caller closes it. Closing a socket with unread input
// makes the kernel send a reset, and a reset can destroy the error message
// in flight before the client reads it.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
