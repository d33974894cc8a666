package postgres

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// DefaultWarmMaxAge is how long a pre-warmed connection is kept: half of
// PostgreSQL's authentication_timeout (60 s by default, on RDS too),
// which ends a connection that has not logged in.
const DefaultWarmMaxAge = 30 * time.Second

// newWarm prepares the pre-warmed connections of cfg (nil, nil: none):
// for the endpoint, or behind an Aurora cluster endpoint (cfg.Router) per
// instance, since a routed login dials the instance the router chose. Only
// TLS upstreams are pre-warmed: the TLS handshake is what is saved.
func newWarm(cfg Config, d *Dialer) (*proxy.Warm[net.Conn], *proxy.WarmSet[net.Conn]) {
	if cfg.Prewarm <= 0 {
		return nil, nil
	}
	if _, conf := cfg.Upstream.CurrentTLS(); conf == nil {
		return nil, nil
	}
	maxAge := cfg.PrewarmMaxAge
	if maxAge <= 0 {
		maxAge = DefaultWarmMaxAge
	}
	o := proxy.WarmOptions[net.Conn]{
		N: cfg.Prewarm, MaxAge: maxAge, Drop: func(c net.Conn) { c.Close() },
		DialTimeout: cfg.ConnectTimeout, Logger: cfg.Logger.With("engine", "postgres", "upstream", cfg.Upstream.Host), Observer: cfg.Observer,
	}
	if cfg.Router != nil {
		return nil, proxy.NewWarmSet(o, func(ctx context.Context, at proxy.Destination) (net.Conn, error) {
			conf, dial, err := instanceTLSDial(d.up, at)
			if err != nil {
				return nil, err
			}
			return dialTLS(ctx, dial, conf)
		})
	}
	o.Dial = func(ctx context.Context) (net.Conn, error) {
		_, conf := d.up.CurrentTLS()
		return dialTLS(ctx, func(ctx context.Context) (net.Conn, error) { return d.base.DialFunc(ctx, "tcp", d.up.DialAddr()) }, conf)
	}
	return proxy.NewWarm(o), nil
}

// dialTLS dials and goes through TLS as pgconn would (an SSLRequest
// answered S, then the handshake, verified by conf): what is left for a
// login is the startup message.
func dialTLS(ctx context.Context, dial func(context.Context) (net.Conn, error), conf *tls.Config) (net.Conn, error) {
	if conf == nil {
		return nil, errors.New("no TLS configuration")
	}
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		c.SetDeadline(dl)
	}
	// Cancelled (a Warm closing while it dials): the exchange ends now,
	// not at the deadline.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], pgwire.CodeSSLRequest)
	if _, err := c.Write(req[:]); err != nil {
		return nil, fmt.Errorf("SSL request: %w", err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(c, answer[:]); err != nil {
		return nil, fmt.Errorf("SSL answer: %w", err)
	}
	if answer[0] != 'S' {
		return nil, errors.New("server refused TLS")
	}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if !stop() {
		return nil, fmt.Errorf("TLS handshake: %w", context.Cause(ctx)) // the cut may have landed
	}
	tc.SetDeadline(time.Time{})
	ok = true
	return tc, nil
}

// StartWarm starts keeping connections ready (with --prewarm).
func (p *Proxy) StartWarm() {
	p.dialer.warm.Start()
	p.warmAt.Start()
}

// StopWarm stops it and closes the ready connections.
func (p *Proxy) StopWarm() {
	p.dialer.warm.Close()
	p.warmAt.Close()
}

// connectWarm logs in with cfg on a connection through TLS already when
// take has one (pgconn sends the startup message on it), else as cfg
// dials; a ready connection the server closed meanwhile (a restart) is
// reported to stale and the login dials afresh.
func connectWarm(ctx context.Context, cfg *pgconn.Config, take func() (net.Conn, bool), stale func(error), check func(context.Context, *pgconn.PgConn) error) (*pgconn.HijackedConn, error) {
	if c, ok := take(); ok {
		warm := *cfg
		warm.TLSConfig = nil
		warm.DialFunc = func(context.Context, string, string) (net.Conn, error) { return c, nil }
		hc, err := pgwire.Connect(ctx, &warm, check)
		if err == nil || !proxy.WarmConnGone(err) || ctx.Err() != nil {
			return hc, err
		}
		stale(err)
	}
	return pgwire.Connect(ctx, cfg, check)
}
