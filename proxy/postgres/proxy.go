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

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
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
	dialer.warm = newWarm(cfg, dialer)
	cfg.Logger = log.With("engine", "postgres", "upstream", cfg.Upstream.Host)
	p := &Proxy{cfg: cfg, dialer: dialer, cancels: newCancelMap()}
	return p, nil
}

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	p.cfg.Serve(ctx, client, p)
}

// Target is the upstream; it implements proxy.Engine.
func (p *Proxy) Target() proxy.Target {
	up := p.cfg.Upstream
	return proxy.Target{Host: up.Host, Port: up.Port, DialAddr: up.DialAddr(), Tunnel: up.DialAddress != "", TLS: p.tlsSettings()}
}

// handshake is one Postgres client's login: its opening read, then the
// upstream session's greeting written with a cancel key of the proxy's.
// It implements proxy.Handshake.
type handshake struct {
	p       *Proxy
	conn    net.Conn // the client, as the opening left it
	startup *pgwire.Startup
	who     proxy.Who
	forget  func() // drops the session's cancel key
}

// session is an upstream login taken over from pgconn: the connection and
// what the server said at login, from which the client is greeted.
type session struct{ hc *pgconn.HijackedConn }

func (s *session) Upstream() net.Conn              { return s.hc.Conn }
func (s *session) Farewell() proxy.Farewell        { return &farewell{} }
func (h *handshake) Who() proxy.Who                { return h.who }
func (h *handshake) Client() net.Conn              { return h.conn }
func (h *handshake) Fail(f *failure.Failure) error { return writeFailure(h.conn, f) }

func (h *handshake) Close() {
	if h.forget != nil {
		h.forget()
	}
}

// Open reads the client's opening (answering an SSLRequest with N): a
// cancel request is forwarded and ends there, uncounted against the
// limits since it ends work; a startup message names the user. It
// implements proxy.Engine.
func (p *Proxy) Open(l *proxy.Login) (proxy.Handshake, error) {
	h := &handshake{p: p, conn: l.Client}
	hello, err := pgwire.ReadHello(l.Client, pgwire.HelloOptions{})
	if err != nil {
		return h, clientError(err)
	}
	l.FirstPacket()
	h.conn = hello.Conn
	if hello.Cancel != nil {
		p.forwardCancel(l.Ctx, l.Log, h.conn, *hello.Cancel)
		return h, &proxy.Handled{Reason: failure.CancelRequest}
	}
	if f := l.Admit(); f != nil {
		return h, f
	}
	st := hello.Startup
	h.startup = st
	user := st.User()
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	h.who = proxy.Who{User: user, Database: st.Database()}
	if isReplication(st.Params["replication"]) {
		return h, &failure.Failure{Reason: failure.Protocol, Code: failure.Code{SQLState: pgwire.CodeFeatureNotSupported},
			Cause: "replication connections cannot use IAM authentication on RDS", Fix: "use a password user for replication"}
	}
	return h, nil
}

// Login logs in upstream as user with token, passing on the client's
// database and runtime parameters.
func (h *handshake) Login(ctx context.Context, user, token string) (proxy.Session, error) {
	st := h.startup
	hc, err := h.p.dialer.Login(ctx, Login{User: user, Database: st.Database(), Password: token, Params: st.RuntimeParams()})
	if err != nil {
		return nil, err
	}
	return &session{hc}, nil
}

// Finish greets the client with the session's parameters and a cancel
// key of the proxy's own, which maps to the session's backend.
func (h *handshake) Finish(s proxy.Session) error {
	up := s.(*session).hc
	// Cancels go to the address this session is on, not to a fresh lookup
	// of the endpoint name: behind a reader endpoint's round-robin DNS that
	// could be another instance.
	target := h.p.cfg.Upstream
	target.DialAddress = up.Conn.RemoteAddr().String()
	key, forget, err := h.p.cancels.register(target, pgwire.CancelKey{PID: up.PID, Secret: up.SecretKey})
	if err != nil {
		return &failure.Failure{Reason: failure.Protocol, Code: failure.Code{SQLState: pgwire.CodeConnectionFailure}, Err: err,
			Cause: "cannot make a cancel key for this session (the system's random source failed)", Fix: "connect again; if it persists, see the proxy's log"}
	}
	h.forget = forget
	greeting := &pgwire.Greeting{Params: up.ParameterStatuses, Key: key, TxStatus: up.TxStatus, Negotiate: pgwire.Negotiation(h.startup)}
	return pgwire.WriteGreeting(h.conn, greeting)
}

// RefuseConn turns away a client the handshake cap has no place for
// (see proxy.Settings.Refuse); it implements proxy.Refuser.
func (p *Proxy) RefuseConn(ctx context.Context, client net.Conn, r proxy.Refusal) {
	p.cfg.Refuse(ctx, client, r, p)
}

// Refusing reads the opening of a client refused at accept, so that its
// SSLRequest gets its one-byte answer and the ErrorResponse (53300) comes
// where libpq and pgx read it. A cancel request is forwarded rather than
// refused: it ends work. It implements proxy.Engine.
func (p *Proxy) Refusing(ctx context.Context, client net.Conn, log *slog.Logger) (proxy.Handshake, error) {
	h := &handshake{p: p, conn: client}
	hello, err := pgwire.ReadHello(client, pgwire.HelloOptions{})
	if err != nil {
		return h, err
	}
	h.conn = hello.Conn
	if hello.Cancel != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		p.forwardCancel(cctx, log, hello.Conn, *hello.Cancel)
		return h, &proxy.Handled{Reason: failure.CancelRequest}
	}
	return h, nil
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
