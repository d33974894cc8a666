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

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// DefaultWarmMaxAge is how long a pre-warmed connection is kept: half of
// PostgreSQL's authentication_timeout (60 s by default, on RDS too),
// which ends a connection that has not logged in.
const DefaultWarmMaxAge = 30 * time.Second

// newWarm prepares the pre-warmed connections of cfg (nil: none). Only
// TLS upstreams are pre-warmed: the TLS handshake is what is saved.
func newWarm(cfg Config, d *Dialer) *proxy.Warm[net.Conn] {
	if cfg.Prewarm <= 0 {
		return nil
	}
	if _, conf := cfg.Upstream.CurrentTLS(); conf == nil {
		return nil
	}
	maxAge := cfg.PrewarmMaxAge
	if maxAge <= 0 {
		maxAge = DefaultWarmMaxAge
	}
	return proxy.NewWarm(proxy.WarmOptions[net.Conn]{
		N: cfg.Prewarm, MaxAge: maxAge, Dial: d.dialTLS, Drop: func(c net.Conn) { c.Close() },
		DialTimeout: cfg.ConnectTimeout, Logger: cfg.Logger.With("engine", "postgres", "upstream", cfg.Upstream.Host), Observer: cfg.Observer,
	})
}

// dialTLS dials the upstream and goes through TLS as pgconn would (an
// SSLRequest answered S, then the handshake, verified by the trust's
// current configuration): what is left for a login is the startup
// message.
func (d *Dialer) dialTLS(ctx context.Context) (net.Conn, error) {
	_, conf := d.up.CurrentTLS()
	if conf == nil {
		return nil, errors.New("no TLS configuration")
	}
	c, err := d.base.DialFunc(ctx, "tcp", d.up.DialAddr())
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
	tc.SetDeadline(time.Time{})
	ok = true
	return tc, nil
}

// StartWarm starts keeping connections ready (with --prewarm).
func (p *Proxy) StartWarm() { p.dialer.warm.Start() }

// StopWarm stops it and closes the ready connections.
func (p *Proxy) StopWarm() { p.dialer.warm.Close() }
