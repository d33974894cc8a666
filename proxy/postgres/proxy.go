package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	// Variant makes the engine another database on the Postgres wire
	// (Aurora DSQL: proxy/dsql); zero for PostgreSQL itself.
	Variant Variant
}

// Proxy accepts Postgres clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg     Config
	dialer  *Dialer
	cancels *cancelMap
	// warmAt: behind an Aurora cluster endpoint with --prewarm, the
	// connections made ready per instance (nil: none; see newWarm).
	warmAt *proxy.WarmSet[net.Conn]
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
	var warmAt *proxy.WarmSet[net.Conn]
	dialer.warm, warmAt = newWarm(cfg, dialer)
	cfg.Logger = log.With("engine", cfg.Variant.name(), "upstream", cfg.Upstream.Host)
	p := &Proxy{cfg: cfg, dialer: dialer, cancels: newCancelMap(), warmAt: warmAt}
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
	forget  func()  // drops the session's cancel key
	poolKey *string // PoolKey, once made (after Open: it names who and startup)
}

// session is an upstream login taken over from pgconn, or a parked one
// taken over from the pool: the connection and what the server said at
// login (and since), from which the client is greeted.
type session struct {
	raw    net.Conn
	params map[string]string // ParameterStatus values, as the client is to see them
	key    pgwire.CancelKey  // the upstream backend's
	tx     byte              // ReadyForQuery status
	born   time.Time
	// park follows the client's use of the session when sessions are
	// reused (nil: they are not); see reuse.go.
	park *proxy.ParkConn
	p    *Proxy
	age  *sessionAge // nil: the upstream sets no session age limit (DSQL's hour); kept across reuse
	host string      // the Aurora instance logged in to (LoginAt), for cancels; "" for the endpoint
	// resetApp is the application_name a reset returns the session to
	// (its login's, as the server reported it); resetAppKnown: reported.
	resetApp      string
	resetAppKnown bool
	// answered is when the server last answered the proxy on it (its
	// login, its last reset): see adoptApp.
	answered time.Time
}

func newSession(p *Proxy, hc *pgconn.HijackedConn, age *sessionAge) *session {
	s := &session{raw: hc.Conn, params: maps.Clone(hc.ParameterStatuses), key: pgwire.CancelKey{PID: hc.PID, Secret: hc.SecretKey},
		tx: hc.TxStatus, born: time.Now(), p: p, age: age}
	s.resetApp, s.resetAppKnown = hc.ParameterStatuses["application_name"]
	s.answered = s.born
	if p.cfg.Pool != nil {
		s.park = proxy.NewParkConn(s.raw, newTracker(s.tx))
	}
	return s
}

func (s *session) Upstream() net.Conn {
	if s.park != nil {
		return s.park
	}
	return s.raw
}
func (s *session) Farewell() proxy.Farewell {
	if s.park != nil {
		return &quitFarewell{farewell: &farewell{age: s.age}, park: s.park}
	}
	return &farewell{age: s.age}
}
func (h *handshake) Who() proxy.Who                { return h.who }
func (h *handshake) Client() net.Conn              { return h.conn }
func (h *handshake) Fail(f *failure.Failure) error { return writeFailure(h.conn, f) }

func (h *handshake) Close() {
	if h.forget != nil {
		h.forget()
		h.forget = nil // Close runs again after a session is parked
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
	v := h.p.cfg.Variant
	login := Login{User: user, Database: v.database(h.p.cfg.Logger, st.Database()), Password: token, Params: st.RuntimeParams()}
	hc, err := h.p.dialer.Login(ctx, login)
	if err != nil && v.Retry != nil && v.Retry(ctx, err) {
		hc, err = h.p.dialer.Login(ctx, login)
	}
	if err != nil {
		return nil, err
	}
	return newSession(h.p, hc, v.sessionAge(h.p.cfg.Logger)), nil
}

// Finish greets the client with the session's parameters and a cancel
// key of the proxy's own, which maps to the session's backend.
func (h *handshake) Finish(s proxy.Session) error {
	up := s.(*session)
	// Cancels go to the address this session is on, not to a fresh lookup
	// of the endpoint name: behind a reader endpoint's round-robin DNS that
	// could be another instance.
	target := h.p.cfg.Upstream
	target.DialAddress = up.raw.RemoteAddr().String()
	if up.host != "" {
		target.Host = up.host // an Aurora instance: TLS verifies its name
	}
	key, forget, err := h.p.cancels.register(target, up.key)
	if err != nil {
		return &failure.Failure{Reason: failure.Protocol, Code: failure.Code{SQLState: pgwire.CodeConnectionFailure}, Err: err,
			Cause: "cannot make a cancel key for this session (the system's random source failed)", Fix: "connect again; if it persists, see the proxy's log"}
	}
	h.forget = forget
	greeting := &pgwire.Greeting{Params: up.params, Key: key, TxStatus: up.tx, Negotiate: pgwire.Negotiation(h.startup)}
	if h.p.cfg.Pool == nil {
		// Only a session that may be parked needs the startup message
		// (PoolKey) and the parameters (Adopt) again: without session
		// reuse an idle session does not hold them (issue 15).
		h.startup, up.params = nil, nil
	}
	return pgwire.WriteGreeting(proxy.ClientWriter(h.conn), greeting)
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
	t, ok, done := p.cancels.acquire(k)
	if !ok {
		log.Info("cancel request with an unknown key ignored")
		return
	}
	defer done()
	ts, tlsConf := t.upstream.CurrentTLS()
	if tlsConf != nil && t.upstream.Host != ts.Host {
		// A session on an Aurora instance (see route.go): its name, not
		// the cluster's.
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName = t.upstream.Host
	}
	if err := pgwire.SendCancel(ctx, t.upstream.DialAddr(), tlsConf, t.key); err != nil {
		log.Warn("cancel request not delivered", "err", err)
		return
	}
	log.Info("cancel request forwarded", "upstream_pid", t.key.PID, "upstream_addr", t.upstream.DialAddr())
}
