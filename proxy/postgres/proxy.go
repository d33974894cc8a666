package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// TokenSource builds IAM tokens and says whose credentials sign them.
type TokenSource = proxy.TokenSource

// Config configures a Postgres proxy for one upstream.
type Config struct {
	Upstream Upstream // Trust must be set: IAM tokens only travel over TLS
	proxy.Settings
}

// Proxy accepts Postgres clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg     Config
	dialer  *Dialer
	cancels *cancelMap
	log     *slog.Logger
	obs     proxy.Observer
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if ts, conf := cfg.Upstream.CurrentTLS(); conf == nil {
		// Plaintext only as tlsca allows it: --tls-mode disable to a
		// loopback address.
		if ts.Mode != tlsca.Disable {
			return nil, errors.New("postgres proxy: upstream TLS configuration is required")
		}
		if err := ts.Check(); err != nil {
			return nil, fmt.Errorf("postgres proxy: %w", err)
		}
	}
	if err := cfg.Settings.Check("postgres"); err != nil {
		return nil, err
	}
	log := cfg.Logger
	dialer, err := NewDialer(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, dialer: dialer, cancels: newCancelMap(), log: log.With("engine", "postgres", "upstream", cfg.Upstream.Host), obs: cfg.Observer}
	return p, nil
}

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	defer client.Close()
	l := p.cfg.BeginLogin(ctx, client)
	defer l.End()
	hctx, start := l.Ctx, l.Start
	log := p.log.With("client", client.RemoteAddr().String())

	hello, err := pgwire.ReadHello(client, pgwire.HelloOptions{})
	if err != nil {
		p.fail(l, log, client, clientError(err))
		return
	}
	l.FirstPacket()
	conn := hello.Conn
	if hello.Cancel != nil {
		// Cancels are not counted against the cap: they end work.
		p.obs.Refused(proxy.ReasonCancelRequest)
		p.forwardCancel(hctx, log, conn, *hello.Cancel)
		return
	}
	release, refused := proxy.TakeAll(p.cfg.Limits...)
	if refused != "" {
		p.fail(l, log, conn, &Error{Code: pgwire.CodeTooManyConnections, Reason: proxy.ReasonLimit, Message: refused})
		return
	}
	defer release()
	st := hello.Startup
	user := st.User()
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	log = log.With("user", user, "database", st.Database())
	if isReplication(st.Params["replication"]) {
		p.fail(l, log, conn, &Error{Code: pgwire.CodeFeatureNotSupported, Reason: proxy.ReasonProtocol,
			Message: "replication connections cannot use IAM authentication on RDS: use a password user for replication"})
		return
	}

	loginStart := time.Now()
	up, err := p.login(hctx, user, st)
	upstreamTime := time.Since(loginStart) // token, dial, TLS, login
	if err != nil {
		if ctx.Err() != nil || l.Evicted() != "" {
			p.fail(l, log, conn, err) // cut by shutdown or evicted: say so
			return
		}
		p.fail(l, log, conn, p.explain(hctx, user, err))
		return
	}
	defer up.Conn.Close()
	if ctx.Err() != nil {
		// The drain deadline passed during the login: a greeting now would
		// be followed by a dead socket.
		p.fail(l, log, conn, ctx.Err())
		return
	}
	// Cancels go to the address this session is on, not to a fresh lookup
	// of the endpoint name: behind a reader endpoint's round-robin DNS that
	// could be another instance.
	target := p.cfg.Upstream
	target.DialAddress = up.Conn.RemoteAddr().String()
	key, forget, err := p.cancels.register(target, pgwire.CancelKey{PID: up.PID, Secret: up.SecretKey})
	if err != nil {
		p.fail(l, log, conn, &Error{Code: pgwire.CodeConnectionFailure, Reason: proxy.ReasonProtocol, Err: err,
			Message: "cannot make a cancel key for this session (the system's random source failed). Fix: connect again; if it persists, see the proxy's log"})
		return
	}
	defer forget()
	greeting := &pgwire.Greeting{Params: up.ParameterStatuses, Key: key, TxStatus: up.TxStatus, Negotiate: pgwire.Negotiation(st)}
	if err := pgwire.WriteGreeting(conn, greeting); err != nil {
		p.obs.Refused(proxy.ReasonClientGone)
		log.Info("client went away during login", "err", err)
		return
	}
	l.Relaying(conn, up.Conn)
	log.Debug("connected", "upstream_pid", up.PID, "upstream_addr", target.DialAddress, "handshake", time.Since(start))

	p.obs.LoggedIn(time.Since(start), upstreamTime)
	proxy.RelayAndLog(ctx, log, conn, up.Conn, start, proxy.RelayOptions{IdleTimeout: p.cfg.IdleTimeout, Observer: p.obs, Farewell: &farewell{}})
}

// refuseReadTimeout bounds reading the opening of a client refused at
// accept: long enough for any real client's startup message, short enough
// that a flood of silent ones costs little.
const refuseReadTimeout = time.Second

// RefuseConn turns away a client the handshake cap has no place for; it
// implements proxy.Refuser. The client's opening is read first, so that
// its SSLRequest gets its one-byte answer and the ErrorResponse (53300)
// comes where libpq and pgx read it. A cancel request is forwarded rather
// than refused: it ends work.
func (p *Proxy) RefuseConn(ctx context.Context, client net.Conn, r proxy.Refusal) {
	defer client.Close()
	p.obs.Accepted()
	defer p.obs.Ended()
	log := p.log.With("client", client.RemoteAddr().String())
	if r.Drop {
		p.obs.Refused(proxy.ReasonHandshakeLimit)
		log.Debug("connection dropped: too many connections logging in, and too many being refused")
		return
	}
	client.SetDeadline(time.Now().Add(refuseReadTimeout))
	hello, err := pgwire.ReadHello(client, pgwire.HelloOptions{})
	if err == nil && hello.Cancel != nil {
		p.obs.Refused(proxy.ReasonCancelRequest)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		p.forwardCancel(cctx, log, hello.Conn, *hello.Cancel)
		return
	}
	p.obs.Refused(proxy.ReasonHandshakeLimit)
	if err != nil {
		log.Debug("connection refused at accept: too many connections logging in; it sent no startup message in time", "err", err)
		return
	}
	log.Debug("connection refused at accept: too many connections logging in", "user", hello.Startup.User())
	client.SetWriteDeadline(time.Now().Add(refuseReadTimeout))
	if writeError(hello.Conn, &Error{Code: pgwire.CodeTooManyConnections, Reason: proxy.ReasonHandshakeLimit, Message: r.Message}) == nil {
		proxy.LingerClose(hello.Conn)
	}
}

// isReplication reads the replication startup parameter as PostgreSQL
// does: "database" or any boolean true.
func isReplication(v string) bool {
	v = strings.ToLower(v)
	switch {
	case v == "" || v == "0",
		strings.HasPrefix("false", v),
		strings.HasPrefix("no", v),
		len(v) >= 2 && strings.HasPrefix("off", v):
		return false
	}
	return true
}

// login builds a token for user and logs in upstream with it.
func (p *Proxy) login(ctx context.Context, user string, st *pgwire.Startup) (*pgconn.HijackedConn, error) {
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
func (p *Proxy) forwardCancel(ctx context.Context, log *slog.Logger, client net.Conn, k pgwire.CancelKey) {
	client.Close()
	t, ok := p.cancels.lookup(k)
	if !ok {
		log.Info("cancel request with an unknown key ignored")
		return
	}
	_, tlsConf := t.upstream.CurrentTLS()
	if err := pgwire.SendCancel(ctx, t.upstream.DialAddr(), tlsConf, t.key); err != nil {
		log.Warn("cancel request not delivered", "err", err)
		return
	}
	log.Info("cancel request forwarded", "upstream_pid", t.key.PID, "upstream_addr", t.upstream.DialAddr())
}

// fail tells the client why its connection cannot go on, and logs it.
func (p *Proxy) fail(l *proxy.Login, log *slog.Logger, client net.Conn, err error) {
	var pe *Error
	if why := l.Evicted(); why != "" {
		// Evictions come in floods: the server logs a summary.
		p.obs.Refused(proxy.ReasonEvicted)
		log.Debug("connection evicted", "cause", err)
		pe = &Error{Code: pgwire.CodeTooManyConnections, Reason: proxy.ReasonEvicted, Message: why}
		client.SetWriteDeadline(time.Now().Add(time.Second))
		if writeError(client, pe) == nil {
			proxy.LingerClose(client)
		}
		return
	}
	if !errors.As(err, &pe) {
		shutdown, reason := proxy.Unexplained(l.Drain, log, err, l.Start)
		if !shutdown {
			p.obs.Refused(reason)
			return
		}
		pe = &Error{Code: pgwire.CodeAdminShutdown, Reason: proxy.ReasonShutdown, Err: err, Message: proxy.ShutdownMessage}
	}
	attrs := []any{"reason", pe.Reason, "code", pe.Code, "message", pe.Message}
	if pe.Err != nil {
		attrs = append(attrs, "cause", pe.Err.Error())
	}
	p.obs.Refused(pe.Reason)
	log.Warn("connection refused", attrs...)
	client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if writeError(client, pe) == nil {
		proxy.LingerClose(client)
	}
}
