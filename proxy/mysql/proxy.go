package mysql

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Config configures a MySQL proxy for one upstream.
type Config struct {
	Upstream Upstream // Trust (or TLS) must be set: IAM tokens only travel over TLS
	proxy.Settings
}

// Proxy accepts MySQL clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg Config
	log *slog.Logger
	obs proxy.Observer
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
	p := &Proxy{cfg: cfg, log: log.With("engine", "mysql", "upstream", cfg.Upstream.Host), obs: cfg.Observer}
	return p, nil
}

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	defer client.Close()
	l := p.cfg.BeginLogin(ctx, client)
	defer l.End()
	hctx, hs, start := l.Ctx, l.Drain, l.Start
	log := p.log.With("client", client.RemoteAddr().String())

	release, refused := proxy.TakeAll(p.cfg.Limits...)
	if refused != "" {
		p.fail(hs, log, client, &Error{Code: ErConCount, Reason: proxy.ReasonLimit, Message: refused}, start, 0, false)
		return
	}
	defer release()

	// The upstream's greeting comes first: the client must see the
	// server's version, capabilities and connection id.
	dctx, dcancel := context.WithTimeout(hctx, p.cfg.ConnectTimeout)
	dialStart := time.Now()
	pending, err := Dial(dctx, p.cfg.Upstream)
	upstreamTime := time.Since(dialStart)
	dcancel()
	if err != nil {
		p.fail(hs, log, client, p.explain(hctx, "", err), start, 0, false)
		return
	}
	// Whatever ends this login early, the upstream sees a failed login
	// rather than a broken handshake (see Pending.Abandon).
	defer func() {
		if pending != nil {
			pending.Abandon()
		}
	}()
	scramble, err := NewScramble()
	if err != nil {
		p.fail(hs, log, client, &Error{Code: ErHandshake, Reason: proxy.ReasonProtocol, Err: err,
			Message: "cannot make a scramble (the system's random source failed). Fix: connect again; if it persists, see the proxy's log"}, start, 0, false)
		return
	}
	hello, err := Greet(client, ClientGreeting(pending.Greeting, scramble, PluginNativePassword, false), FrontOptions{})
	if err != nil {
		p.fail(hs, log, hello.Conn, err, start, 1, true)
		return
	}
	conn, resp := hello.Conn, hello.Response
	seq, err := settleClientAuth(hello, PluginNativePassword, scramble)
	if err != nil {
		p.fail(hs, log, conn, err, start, 1, true)
		return
	}
	user := resp.User
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	log = log.With("user", user, "database", resp.Database, "connection_id", pending.Greeting.ConnectionID)
	if user == "" {
		p.fail(hs, log, conn, &Error{Code: ErAccessDenied, Reason: proxy.ReasonProtocol,
			Message: "no user name. Fix: pass the database user (mysql -u USER), or start the proxy with --db-user"}, start, seq, true)
		return
	}

	tokStart := time.Now()
	tok, err := p.cfg.Tokens.Token(hctx, p.cfg.Upstream.Host, p.cfg.Upstream.Port, p.cfg.Region, user)
	upstreamTime += time.Since(tokStart) // as for Postgres: token, dial, TLS, login
	if err != nil {
		p.fail(hs, log, conn, p.explain(hctx, user, err), start, seq, true)
		return
	}
	lctx, lcancel := context.WithTimeout(hctx, p.cfg.ConnectTimeout)
	loginStart := time.Now()
	sess, err := pending.Login(lctx, Login{User: user, Database: resp.Database, Password: tok, Plugin: PluginClearPassword, OnlyPlugin: true, Client: resp})
	lcancel()
	upstreamTime += time.Since(loginStart)
	pending = nil // Login closed it on failure, and owns it on success
	if err != nil {
		if ctx.Err() != nil {
			p.fail(hs, log, conn, err, start, seq, true)
			return
		}
		p.fail(hs, log, conn, p.explain(hctx, user, err), start, seq, true)
		return
	}
	defer sess.Conn.Close()
	if ctx.Err() != nil {
		p.fail(hs, log, conn, ctx.Err(), start, seq, true)
		return
	}
	if err := writePacket(conn, seq, sess.OK); err != nil {
		p.obs.Refused(proxy.ReasonClientGone)
		log.Info("client went away during login", "err", err)
		return
	}
	l.Relaying(conn, sess.Conn)
	log.Debug("connected", "handshake", time.Since(start))

	p.obs.LoggedIn(time.Since(start), upstreamTime)
	proxy.RelayAndLog(ctx, log, p.obs, newFarewell(), conn, sess.Conn, start, p.cfg.IdleTimeout)
}

// fail tells the client why its connection cannot go on, and logs it.
//
// seq and greeted say where the login is: an ERR before the greeting goes
// out with sequence id 0 and no SQLSTATE, after it with the next id.
// Errors from Greet carry their own position.
func (p *Proxy) fail(ctx context.Context, log *slog.Logger, client net.Conn, err error, start time.Time, seq byte, greeted bool) {
	var me *Error
	if !errors.As(err, &me) {
		shutdown, reason := proxy.Unexplained(ctx, log, err, start)
		if !shutdown {
			p.obs.Refused(reason)
			return
		}
		me = &Error{Code: ErServerShutdown, Reason: proxy.ReasonShutdown, Err: err, Message: proxy.ShutdownMessage}
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
