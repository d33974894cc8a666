package mysql

import (
	"context"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// dialInstance dials the Aurora instance d and reads its greeting: the
// token is for d.Host, TLS verifies d.Host (every instance's certificate
// names it), and d.DialAddr is dialed.
// A connection made ready for d (--prewarm) is taken first.
func (p *Proxy) dialInstance(ctx context.Context, d proxy.Destination) (*Pending, error) {
	take := func() (*Pending, bool) { return p.warmAt.Take(d) }
	if pending := takeLive(take, func(err error) { p.warmAt.Stale(d, err) }); pending != nil {
		return pending, nil
	}
	return dialAt(ctx, p.cfg.Upstream, d)
}

func dialAt(ctx context.Context, u Upstream, d proxy.Destination) (*Pending, error) {
	_, conf := u.currentTLS()
	conf, err := proxy.InstanceTLS(conf, d)
	if err != nil {
		return nil, err
	}
	u.Host, u.Port, u.DialAddress, u.Trust, u.TLS = d.Host, d.Port, d.DialAddr, nil, conf
	pending, err := Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	pending.at = d.Host
	return pending, nil
}

// dialRouted is the greeting's connection for an Aurora cluster: from the
// instance the router would send the login to now (see Router.Reach), so
// that the client is greeted by the server it then talks to (its
// connection id is the session's), and never by a demoted writer the
// cluster's stale DNS still names. routed false: dial the endpoint.
func (p *Proxy) dialRouted(ctx context.Context) (pending *Pending, routed bool, err error) {
	r := p.cfg.Router
	if r == nil {
		return nil, false, nil
	}
	var at proxy.Destination
	routed, err = r.Reach(ctx, func(ctx context.Context, d proxy.Destination) error {
		var err error
		at = d
		pending, err = p.dialInstance(ctx, d)
		return err
	})
	if err != nil && routed {
		err = proxy.ExplainAt(p.Target(), at, "", err) // names the instance, not the endpoint
	}
	return pending, routed, err
}

// LoginAt logs in to the Aurora instance d instead of the configured
// endpoint; it implements proxy.Rerouter. The connection that greeted the
// client is used when it is on d; otherwise (the router chose another
// instance meanwhile) it is let go and d is dialed.
func (h *handshake) LoginAt(ctx context.Context, d proxy.Destination, user, token string) (proxy.Session, error) {
	pending := h.pending
	h.pending = nil // LoginAt closes it on failure, and owns it on success
	if pending != nil && pending.at != d.Host {
		go pending.Abandon() // up to a second for the server's answer: not on the login's path
		pending = nil
	}
	if pending == nil {
		var err error
		if pending, err = h.p.dialInstance(ctx, d); err != nil {
			return nil, err
		}
	}
	s, err := loginOrRedial(ctx, pending, h.login(user, token), func(err error) { h.p.warmAt.Stale(d, err) },
		func(ctx context.Context) (*Pending, error) { return dialAt(ctx, h.p.cfg.Upstream, d) })
	if err != nil {
		return nil, err
	}
	sess := &session{s: s, at: d.HostPort()}
	h.reusable(sess) // parked under the instance: a writer change drops it
	return sess, nil
}

// probeCaps are what the topology probe's login asks for: the 4.1
// protocol, transactions, and results without the EOF packets where the
// server allows.
const probeCaps = mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth |
	mywire.CapTransactions | mywire.CapLongFlag | mywire.CapDeprecateEOF

// Probe logs in to the Aurora instance d as user, in database, and reads
// the cluster's topology there (the three topology.SQL[MySQL] queries,
// one COM_QUERY each); it implements proxy.Prober.
func (p *Proxy) Probe(ctx context.Context, d proxy.Destination, user, database, token string) (topology.Probe, error) {
	return ProbeAt(ctx, p.cfg.Upstream, d, user, database, token)
}

// ProbeAt is Probe on u's settings (TLS trust, TCP timeout) without a
// Proxy: doctor reads the topology through the cluster endpoint with it
// (d: the endpoint itself) as the proxy's monitor does.
func ProbeAt(ctx context.Context, u Upstream, d proxy.Destination, user, database, token string) (topology.Probe, error) {
	pending, err := dialAt(ctx, u, d)
	if err != nil {
		return topology.Probe{}, err
	}
	s, err := pending.Login(ctx, mywire.Login{User: user, Database: database, Password: token,
		Plugin: mywire.PluginClearPassword, OnlyPlugin: true,
		Client: &mywire.HandshakeResponse{Caps: probeCaps, MaxPacket: 1 << 24}})
	if err != nil {
		return topology.Probe{}, err
	}
	defer mywire.Quit(s.Conn) // a polite goodbye
	deprecateEOF := s.Caps&mywire.CapDeprecateEOF != 0
	return topology.ProbeMySQL(ctx, func(ctx context.Context, q string) ([][][]byte, error) {
		return mywire.Query(ctx, s.Conn, deprecateEOF, q)
	})
}
