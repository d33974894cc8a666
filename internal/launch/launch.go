// Package launch turns one upstream's settings into a running proxy. It
// resolves the upstream (resolve.go: endpoint, region and where it came
// from, credentials, CA trust) the one way every command resolves it,
// builds the engine that serves it, listens and serves until Shutdown.
// The run command, the demo, validate and the integration tests all start
// the proxy through it, so what is tested is what runs; doctor and token
// use its resolution and its logins (login.go), so what they check is
// what the proxy does.
package launch

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Running is a started proxy.
type Running struct {
	up     *Upstream
	limit  *proxy.Limit
	ln     net.Listener
	srv    *proxy.Server
	cancel context.CancelFunc
	done   chan error
	log    *slog.Logger
	pool   *proxy.Pool // session reuse; nil: off

	stopWarm func() // stops the pre-warmed connections
}

// Start resolves the upstream, failing early on anything wrong with the
// configuration, then listens and serves until Shutdown.
func Start(ctx context.Context, c Config, log *slog.Logger) (*Running, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	up, err := Parse(c)
	if err != nil {
		return nil, err
	}
	c = up.Config
	if c.AllowLocalInfile && c.Engine != config.MySQL {
		return nil, fmt.Errorf("--allow-local-infile is for mysql upstreams (LOAD DATA LOCAL INFILE); this one is %s", c.Engine)
	}
	listen := c.Listen
	if listen == "" {
		listen = c.Engine.DefaultListen()
	}
	spec, err := config.ParseListen(listen, c.Engine, up.Endpoint.Port)
	if err != nil {
		return nil, fmt.Errorf("listen %w", err)
	}
	if !spec.Loopback() && !c.AllowNonLoopback {
		return nil, fmt.Errorf("listen %s is not a loopback address: anyone who can reach it logs in as the database user. Fix: listen on 127.0.0.1 or a unix socket, or pass --allow-non-loopback (and firewall the port)", spec)
	}
	mode, err := c.SocketFileMode()
	if err != nil {
		return nil, fmt.Errorf("socket_mode: %w", err)
	}
	log = log.With("upstream_name", c.Name)
	if err := up.load(ctx, log); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			up.Close() // stops the credentials' background refresh
		}
	}()

	// An MFA code is asked (or the AWS CLI cache read) before listening:
	// without a terminal, a missing code fails the start, not the logins.
	if err := up.Tokens.Prepare(ctx); err != nil {
		return nil, err
	}
	h, err := newEngine(up, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !started {
			h.pool.Close()
		}
	}()
	ln, err := Listen(ctx, spec, ListenOptions{KeepAlive: time.Duration(c.KeepAlive), SocketMode: mode})
	if err != nil {
		return nil, err
	}
	if !spec.Loopback() {
		log.Warn("listening on a non-loopback address (--allow-non-loopback): anyone who can reach it logs in as the database user", "listen", ln.Addr().String())
	}
	if c.AllowLocalInfile {
		log.Warn("LOAD DATA LOCAL INFILE is allowed (allow_local_infile): the server can ask a client for any file the client can read")
	}
	srv := proxy.NewServer(h.handler, log)
	srv.LimitHandshakes(c.MaxHandshakes, 0)
	sctx, cancel := context.WithCancel(context.Background())
	r := &Running{up: up, limit: h.limit, ln: ln, srv: srv, cancel: cancel, done: make(chan error, 1), log: log, pool: h.pool}
	r.stopWarm = startWarm(h.handler)
	go func() { r.done <- r.srv.Serve(sctx, ln) }()
	if h.router != nil {
		go h.router.Run(sctx)
	}
	refresh := time.Duration(c.CARefresh)
	if refresh == 0 {
		refresh = tlsca.DefaultMaxAge
	}
	if up.TLS.Mode != tlsca.Disable && refresh > 0 {
		go up.Trust.KeepFresh(sctx, up.bundle, refresh)
	}
	if up.global != nil {
		go up.global.run(sctx, log)
	}
	log.Info("proxy ready", readyAttrs(up, ln.Addr().String())...)
	started = true
	return r, nil
}

// engine is what serves one upstream's clients, and the upstream's own
// connection limit.
type engine struct {
	handler proxy.Handler
	limit   *proxy.Limit
	pool    *proxy.Pool   // session reuse; nil: off
	router  *proxy.Router // an Aurora cluster's (route.go), or nil
}

// newEngine builds the engine for up's settings: the serving settings
// every engine shares, then the engine's own.
func newEngine(up *Upstream, log *slog.Logger) (engine, error) {
	c := up.Config
	limit := proxy.NewLimit(c.MaxConnections, "")
	settings := proxy.Settings{
		Region: up.Region, DBUser: c.DBUser, Tokens: up.Tokens, Limits: []*proxy.Limit{limit, c.Shared},
		IdleTimeout: time.Duration(c.IdleTimeout), HandshakeTimeout: time.Duration(c.HandshakeTimeout), ConnectTimeout: time.Duration(c.ConnectTimeout),
		FirstPacketTimeout: firstPacketTimeout(c.Serving), Logger: log, Observer: c.Observer,
	}
	if up.global != nil {
		settings.Follow = up.global
	}
	settings.Guard = loginGuard(c)
	settings.Prewarm, settings.PrewarmMaxAge = prewarm(c)
	var router *proxy.Router
	var err error
	if c.Pausable() {
		// Any connection of the proxy's own wakes a paused cluster and
		// resets its auto-pause timer: no topology polling, no parked
		// sessions. The cluster's DNS is followed instead.
		if c.SessionReuse {
			log.Warn("session_reuse is off for a pausable upstream (resume_wait): a parked session would keep the cluster from pausing")
		}
	} else {
		if router, err = newRouter(up, log); err != nil {
			return engine{}, err
		}
		settings.Router = router
		if router != nil {
			router.Guard = settings.Guard // the monitor's logins count against each instance's rate
		}
		settings.Pool = newPool(c, log)
		if router != nil {
			// Sessions are parked and taken per instance; a writer
			// change closes those parked on the instances it touched.
			router.Pool = settings.Pool
		}
		if router != nil && settings.Prewarm > 0 {
			// Connections ready for the cluster's DNS name would never serve
			// a routed login, which dials the chosen instance: the engines
			// keep them per instance instead (proxy.WarmSet).
			log.Info("prewarm behind an Aurora cluster endpoint: connections are kept ready per instance, from the first login that goes to it", "prewarm", settings.Prewarm)
		}
	}
	var h proxy.Handler
	holdForResume(c, &settings, log)
	switch c.Engine {
	case config.MySQL:
		h, err = mysql.New(mysql.Config{Upstream: up.MySQLUpstream(), MaxUnansweredGreetings: noCapIfZero(c.MaxUnanswered),
			AllowLocalInfile: c.AllowLocalInfile, Settings: settings})
	case config.Postgres:
		h, err = postgres.New(postgres.Config{Upstream: up.PostgresUpstream(), Settings: settings})
	case config.DSQL:
		h, err = newDSQL(up, settings, log)
	default:
		err = fmt.Errorf("--engine %q: supported engines: postgres, mysql, dsql", string(c.Engine))
	}
	if router != nil && err == nil {
		prober, ok := h.(proxy.Prober)
		if !ok {
			return engine{}, fmt.Errorf("engine %s cannot read an Aurora cluster's topology", c.Engine)
		}
		router.Prober = prober
	}
	return engine{handler: h, limit: limit, pool: settings.Pool, router: router}, err
}

// firstPacketTimeout is the serving settings' first-packet timeout, where
// 0 means the handshake timeout (proxy.Settings fills what is still 0).
func firstPacketTimeout(s config.Serving) time.Duration {
	if s.FirstPacketTimeout == 0 {
		return time.Duration(s.HandshakeTimeout)
	}
	return time.Duration(s.FirstPacketTimeout)
}

// noCapIfZero maps a cap where 0 means none (the settings') to one where
// 0 means the engine's default and a negative number none.
func noCapIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// readyAttrs describe a started proxy in its "proxy ready" line.
func readyAttrs(up *Upstream, listen string) []any {
	c, t := up.Config, up.Trust
	ts, _ := t.Current()
	attrs := []any{"engine", c.Engine.String(), "listen", listen, "endpoint", up.Endpoint.String(),
		"region", up.Region, "region_source", up.RegionSource, "tls_mode", string(ts.Mode), "tls_server_name", ts.ExpectedName()}
	if ts.Bundle != nil {
		attrs = append(attrs, "ca_bundle", ts.Bundle.Source, "cas", len(ts.Bundle.Certs))
	}
	if c.DialAddress != "" {
		attrs = append(attrs, "dial_address", c.DialAddress)
	}
	if c.DBUser != "" {
		attrs = append(attrs, "db_user", c.DBUser)
	}
	return attrs
}

// Name is the upstream's name.
func (r *Running) Name() string { return r.up.Config.Name }

// Upstream is the resolved upstream the proxy serves.
func (r *Running) Upstream() *Upstream { return r.up }

// Limit is this upstream's own connection limit.
func (r *Running) Limit() *proxy.Limit { return r.limit }

// Addr is the listening address.
func (r *Running) Addr() net.Addr { return r.ln.Addr() }

// Port is the listening TCP port, for printing and for clients' DSNs.
func (r *Running) Port() string {
	_, port, _ := net.SplitHostPort(r.ln.Addr().String())
	return port
}

// Done delivers the accept loop's end: nil after Shutdown, an error if
// accepting failed.
func (r *Running) Done() <-chan error { return r.done }

// Shutdown stops accepting, waits for open connections until ctx is done,
// then cuts the rest. It reports whether every connection ended by itself.
func (r *Running) Shutdown(ctx context.Context) bool {
	r.cancel()
	// Closed here, not only by the accept loop's goroutine: the process may
	// exit as soon as Shutdown returns, and a unix socket file is removed
	// by Close.
	r.ln.Close()
	defer r.up.Close()
	defer r.pool.Close() // after the connections: the last sessions park, then close
	defer r.stopWarm()
	return r.srv.Shutdown(ctx)
}

// CABundle is the CA bundle new connections trust (nil with --tls-mode
// disable), for its age and size in metrics.
func (r *Running) CABundle() *tlsca.Bundle {
	up, _ := r.up.Trust.Current()
	return up.Bundle
}

// DialAddr is the upstream address dialed, for the readiness backend check.
func (r *Running) DialAddr() string { return r.up.DialAddr() }

// Tokens is the proxy's token source, for its counters (Stats).
func (r *Running) Tokens() *authtoken.Source { return r.up.Tokens }
