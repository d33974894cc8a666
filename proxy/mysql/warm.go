package mysql

import (
	"context"
	"errors"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// DefaultWarmMaxAge is how long a pre-warmed connection is kept: half of
// RDS's connect_timeout (10 s), which ends a greeted connection that has
// not logged in (and counts as a broken handshake towards
// max_connect_errors; Warm ends its connections with a failed login
// instead, see Pending.Abandon).
const DefaultWarmMaxAge = 5 * time.Second

// newWarm prepares the pre-warmed connections of cfg (nil, nil: none):
// dialed, the greeting read; for the endpoint, or behind an Aurora
// cluster endpoint (cfg.Router) per instance, since a routed client is
// greeted by the instance the router chose.
func newWarm(cfg Config) (*proxy.Warm[*Pending], *proxy.WarmSet[*Pending]) {
	if cfg.Prewarm <= 0 {
		return nil, nil
	}
	maxAge := cfg.PrewarmMaxAge
	if maxAge <= 0 {
		maxAge = DefaultWarmMaxAge
	}
	up := cfg.Upstream
	o := proxy.WarmOptions[*Pending]{
		N: cfg.Prewarm, MaxAge: maxAge,
		Drop:        func(p *Pending) { p.Abandon() },
		DialTimeout: cfg.ConnectTimeout, Logger: cfg.Logger, Observer: cfg.Observer,
	}
	if cfg.Router != nil {
		return nil, proxy.NewWarmSet(o, func(ctx context.Context, d proxy.Destination) (*Pending, error) { return dialAt(ctx, up, d) })
	}
	o.Dial = func(ctx context.Context) (*Pending, error) { return Dial(ctx, up) }
	return proxy.NewWarm(o), nil
}

// dial is a greeted upstream connection: a pre-warmed one when one is
// ready, else a fresh dial.
func (p *Proxy) dial(ctx context.Context) (*Pending, error) {
	if pending, routed, err := p.dialRouted(ctx); routed || err != nil {
		return pending, err // an Aurora cluster's instance (route.go)
	}
	if pending := takeLive(p.warm.Take, p.warm.Stale); pending != nil {
		return pending, nil
	}
	return Dial(ctx, p.cfg.Upstream)
}

// errWarmGone is why a ready connection was not used.
var errWarmGone = errors.New("the server closed it (or spoke on it) after its greeting")

// takeLive takes a ready connection the server has said nothing on since
// its greeting, not even its end, or nil: the caller dials. One the
// server closed (a restart, a failover) is closed and reported to stale:
// a client greeted by it would be told a connection id no session has,
// and a failover's first clients would not find the writer down.
func takeLive(take func() (*Pending, bool), stale func(error)) *Pending {
	for {
		pending, ok := take()
		if !ok {
			return nil
		}
		if quiet, known := proxy.Quiet(pending.wire.Conn); !known || quiet {
			pending.warm = true
			return pending
		}
		stale(errWarmGone)
		pending.Close()
	}
}

// StartWarm starts keeping connections ready (with --prewarm).
func (p *Proxy) StartWarm() {
	p.warm.Start()
	p.warmAt.Start()
}

// StopWarm stops it and ends the ready connections.
func (p *Proxy) StopWarm() {
	p.warm.Close()
	p.warmAt.Close()
}
