package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Config configures a MySQL proxy for one upstream.
type Config struct {
	Upstream Upstream // Trust (or TLS) must be set: IAM tokens only travel over TLS
	// MaxUnansweredGreetings caps the upstream connections held for
	// clients that have not answered the greeting yet: the proxy dials the
	// server as soon as a client connects, to show it the server's
	// greeting, so without a cap a flood of clients that connect and say
	// nothing would use up the server's max_connections for everyone.
	// Over it a client waits for a place (newest first), taking the place
	// of one silent for GreetingGrace since its greeting. 0
	// means DefaultMaxUnansweredGreetings; negative, no cap.
	MaxUnansweredGreetings int
	// AllowLocalInfile lets clients use LOAD DATA LOCAL INFILE: the proxy
	// then offers CLIENT_LOCAL_FILES to clients and passes it upstream.
	// Off by default: with it, the server can ask the client for any file
	// the client can read, and a client library that honours such a
	// request sends it whatever query it ran.
	AllowLocalInfile bool
	proxy.Settings
}

// DefaultMaxUnansweredGreetings is Config.MaxUnansweredGreetings's
// default: less than a small RDS instance's max_connections (about 80 for
// a db.t4g.micro), and room for a storm of real clients on a loaded
// machine, where answering a greeting can take a second or more (with 32,
// a 300-client storm under a CPU hog had clients evicted).
const DefaultMaxUnansweredGreetings = 64

// GreetingGrace is how long a client may leave the server's greeting
// unanswered before a client waiting for a place may take its place.
// Answering takes a client more work than speaking first does (read the
// greeting, hash the scramble), and in a 300-client storm under a CPU hog
// go-sql-driver clients were measured taking over two seconds: five
// seconds leaves real clients that room, and still frees the places a
// flood of silent ones holds.
const GreetingGrace = 5 * time.Second

// Proxy accepts MySQL clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	obs       proxy.Observer
	greetings *proxy.Gate
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if _, conf := cfg.Upstream.currentTLS(); conf == nil {
		// mysql_clear_password must never cross a network in clear, and
		// RDS requires TLS for it: --tls-mode disable is Postgres-only.
		return nil, errors.New("mysql proxy: upstream TLS is required (the IAM token goes in clear inside it): --tls-mode disable is not supported for mysql")
	}
	if err := cfg.Settings.Check("mysql"); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if cfg.MaxUnansweredGreetings == 0 {
		cfg.MaxUnansweredGreetings = DefaultMaxUnansweredGreetings
	}
	p := &Proxy{cfg: cfg, log: log.With("engine", "mysql", "upstream", cfg.Upstream.Host), obs: cfg.Observer,
		greetings: proxy.NewGate(cfg.MaxUnansweredGreetings, GreetingGrace)}
	return p, nil
}

// Greetings is the cap on upstream connections held for clients that have
// not answered the greeting (nil: none).
func (p *Proxy) Greetings() *proxy.Gate { return p.greetings }

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	defer client.Close()
	l := p.cfg.BeginLogin(ctx, client)
	defer l.End()
	hctx, start := l.Ctx, l.Start
	log := p.log.With("client", client.RemoteAddr().String())

	release, refused := proxy.TakeAll(p.cfg.Limits...)
	if refused != "" {
		p.fail(l, log, client, &Error{Code: mywire.ErConCount, Reason: proxy.ReasonLimit, Message: refused}, 0, false)
		return
	}
	defer release()

	// The upstream's greeting comes first: the client must see the
	// server's version, capabilities and connection id. The connection
	// dialed for it takes a place among the unanswered greetings until
	// the client answers.
	pending, place, upstreamTime, err := p.dialForGreeting(l)
	if err != nil {
		p.fail(l, log, client, err, 0, false)
		return
	}
	// Whatever ends this login early, the upstream sees a failed login
	// rather than a broken handshake (see Pending.Abandon), and then the
	// place is free: drop runs before the client is told, so a slow
	// client does not hold an upstream connection while it lingers.
	drop := func() {
		if pending != nil {
			pending.Abandon()
			pending = nil
		}
		place.Leave()
	}
	defer drop()
	fail := func(conn net.Conn, err error, seq byte, greeted bool) {
		drop()
		p.fail(l, log, conn, err, seq, greeted)
	}
	scramble, err := mywire.NewScramble()
	if err != nil {
		fail(client, &Error{Code: mywire.ErHandshake, Reason: proxy.ReasonProtocol, Err: err,
			Message: "cannot make a scramble (the system's random source failed). Fix: connect again; if it persists, see the proxy's log"}, 0, false)
		return
	}
	greeting := mywire.Mirror(pending.Greeting, scramble, mywire.PluginNativePassword, false)
	if !p.cfg.AllowLocalInfile {
		greeting.Caps &^= mywire.CapLocalFiles
	}
	hello, err := mywire.Greet(client, greeting, mywire.GreetOptions{Greeted: place.Expose})
	if err != nil {
		fail(hello.Conn, clientError(err), 1, true)
		return
	}
	l.FirstPacket()
	place.Leave()
	conn, resp := hello.Conn, hello.Response
	seq, err := settleClientAuth(hello, mywire.PluginNativePassword, scramble)
	if err != nil {
		fail(conn, clientError(err), 1, true)
		return
	}
	user := resp.User
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	log = log.With("user", user, "database", resp.Database, "connection_id", pending.Greeting.ConnectionID)
	if user == "" {
		fail(conn, &Error{Code: mywire.ErAccessDenied, Reason: proxy.ReasonProtocol,
			Message: "no user name. Fix: pass the database user (mysql -u USER), or start the proxy with --db-user"}, seq, true)
		return
	}

	tokStart := time.Now()
	tok, err := p.cfg.Tokens.Token(hctx, p.cfg.Upstream.Host, p.cfg.Upstream.Port, p.cfg.Region, user)
	upstreamTime += time.Since(tokStart) // as for Postgres: token, dial, TLS, login
	if err != nil {
		fail(conn, p.explain(hctx, user, err), seq, true)
		return
	}
	lctx, lcancel := context.WithTimeout(hctx, p.cfg.ConnectTimeout)
	loginStart := time.Now()
	sess, err := pending.Login(lctx, mywire.Login{User: user, Database: resp.Database, Password: tok, Plugin: mywire.PluginClearPassword,
		OnlyPlugin: true, Client: resp, LocalInfile: p.cfg.AllowLocalInfile})
	lcancel()
	upstreamTime += time.Since(loginStart)
	pending = nil // Login closed it on failure, and owns it on success
	if err != nil {
		if ctx.Err() != nil {
			p.fail(l, log, conn, err, seq, true)
			return
		}
		p.fail(l, log, conn, p.explain(hctx, user, err), seq, true)
		return
	}
	defer sess.Conn.Close()
	if ctx.Err() != nil {
		p.fail(l, log, conn, ctx.Err(), seq, true)
		return
	}
	if err := mywire.WritePacket(conn, seq, sess.OK); err != nil {
		p.obs.Refused(proxy.ReasonClientGone)
		log.Info("client went away during login", "err", err)
		return
	}
	l.Relaying(conn, sess.Conn)
	log.Debug("connected", "handshake", time.Since(start))

	p.obs.LoggedIn(time.Since(start), upstreamTime)
	proxy.RelayAndLog(ctx, log, conn, sess.Conn, start, proxy.RelayOptions{IdleTimeout: p.cfg.IdleTimeout, Observer: p.obs, Farewell: newFarewell()})
}

// dialForGreeting takes a place among the unanswered greetings, waiting
// at most until the client's first-packet deadline, then dials the
// upstream and reads its greeting. An evicted place ends the login (see
// Login.Evict). On error nothing is held. took is the dial's time.
func (p *Proxy) dialForGreeting(l *proxy.Login) (_ *Pending, _ *proxy.Pass, took time.Duration, _ error) {
	wctx, cancel := context.WithDeadline(l.Ctx, l.Start.Add(p.cfg.FirstPacketTimeout))
	place, err := p.greetings.Enter(wctx)
	cancel()
	if err != nil {
		if l.Evicted() != "" || l.Drain.Err() != nil || l.Ctx.Err() != nil {
			return nil, nil, 0, err
		}
		return nil, nil, 0, &Error{Code: mywire.ErConCount, Reason: proxy.ReasonLimit, Err: err,
			Message: fmt.Sprintf("too many clients are connecting without answering the server's greeting (the proxy's limit of %d upstream connections waiting for an answer, --max-unanswered-greetings), and no place freed within %s. Fix: connect again in a moment; if many real clients connect at the same moment, raise --max-unanswered-greetings", p.greetings.Max(), p.cfg.FirstPacketTimeout)}
	}
	max := p.greetings.Max()
	place.OnEvict(func() {
		l.Evict(fmt.Sprintf("too many clients are connecting without answering the server's greeting (the proxy's limit of %d, --max-unanswered-greetings) and this one had not answered %s after getting it, so it was closed to make room. Fix: answer the greeting at once; if many real clients connect at the same moment, raise --max-unanswered-greetings", max, GreetingGrace))
	})
	dctx, dcancel := context.WithTimeout(l.Ctx, p.cfg.ConnectTimeout)
	defer dcancel()
	dialStart := time.Now()
	pending, err := Dial(dctx, p.cfg.Upstream)
	took = time.Since(dialStart)
	if err != nil {
		place.Leave()
		if l.Evicted() != "" {
			return nil, nil, took, err
		}
		return nil, nil, took, p.explain(l.Ctx, "", err)
	}
	return pending, place, took, nil
}

// RefuseConn turns away a client the handshake cap has no place for, as
// a server turns one away over its max_connections: an ERR 1040 in place
// of the greeting. It implements proxy.Refuser.
func (p *Proxy) RefuseConn(ctx context.Context, client net.Conn, r proxy.Refusal) {
	defer client.Close()
	p.obs.Accepted()
	defer p.obs.Ended()
	p.obs.Refused(proxy.ReasonHandshakeLimit)
	log := p.log.With("client", client.RemoteAddr().String())
	if r.Drop {
		log.Debug("connection dropped: too many connections logging in, and too many being refused")
		return
	}
	log.Debug("connection refused at accept: too many connections logging in")
	client.SetWriteDeadline(time.Now().Add(time.Second))
	if writeError(client, &Error{Code: mywire.ErConCount, Reason: proxy.ReasonHandshakeLimit, Message: r.Message}) == nil {
		proxy.LingerClose(client)
	}
}

// fail tells the client why its connection cannot go on, and logs it.
//
// seq and greeted say where the login is: an ERR before the greeting goes
// out with sequence id 0 and no SQLSTATE, after it with the next id.
// Errors from Greet carry their own position.
func (p *Proxy) fail(l *proxy.Login, log *slog.Logger, client net.Conn, err error, seq byte, greeted bool) {
	var me *Error
	if why := l.Evicted(); why != "" {
		// Evictions come in floods: the gates log summaries.
		p.obs.Refused(proxy.ReasonEvicted)
		log.Debug("connection evicted", "cause", err)
		me = &Error{Code: mywire.ErConCount, Reason: proxy.ReasonEvicted, Message: why, Seq: seq, Greeted: greeted}
		client.SetWriteDeadline(time.Now().Add(time.Second))
		if writeError(client, me) == nil {
			proxy.LingerClose(client)
		}
		return
	}
	if !errors.As(err, &me) {
		shutdown, reason := proxy.Unexplained(l.Drain, log, err, l.Start)
		if !shutdown {
			p.obs.Refused(reason)
			return
		}
		me = &Error{Code: mywire.ErServerShutdown, Reason: proxy.ReasonShutdown, Err: err, Message: proxy.ShutdownMessage}
	}
	if !me.Greeted {
		me.Seq, me.Greeted = seq, greeted
	}
	attrs := []any{"reason", me.Reason, "code", me.Code, "message", me.Message}
	if me.Err != nil {
		attrs = append(attrs, "cause", me.Err.Error())
	}
	p.obs.Refused(me.Reason)
	log.Warn("connection refused", attrs...)
	client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if writeError(client, me) == nil {
		proxy.LingerClose(client)
	}
}
