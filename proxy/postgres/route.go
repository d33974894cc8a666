package postgres

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// instanceConfig is a login to the Aurora instance d: the token is for
// d.Host, TLS verifies d.Host (every instance's certificate names it),
// and d.DialAddr is dialed.
func (p *Proxy) instanceConfig(d proxy.Destination) (*pgconn.Config, error) {
	conf, dial, err := instanceTLSDial(p.cfg.Upstream, d)
	if err != nil {
		return nil, err
	}
	return pgwire.PinnedConfig(d.Host, d.Port, conf, dial)
}

// instanceTLSDial is how to reach the Aurora instance d through up's
// settings: the TLS configuration verifying d.Host, and the dial of
// d.DialAddr.
func instanceTLSDial(up Upstream, d proxy.Destination) (*tls.Config, func(context.Context) (net.Conn, error), error) {
	_, conf := up.CurrentTLS()
	conf, err := proxy.InstanceTLS(conf, d)
	if err != nil {
		return nil, nil, err
	}
	dial := up.Dial
	if dial == nil {
		dial = proxy.DialUpstream(up.TCPTimeout)
	}
	return conf, func(ctx context.Context) (net.Conn, error) { return dial(ctx, d.DialAddr) }, nil
}

// LoginAt logs in to the Aurora instance d instead of the configured
// endpoint; it implements proxy.Rerouter.
func (h *handshake) LoginAt(ctx context.Context, d proxy.Destination, user, token string) (proxy.Session, error) {
	cfg, err := h.p.instanceConfig(d)
	if err != nil {
		return nil, err
	}
	st := h.startup
	cfg.User, cfg.Database, cfg.Password, cfg.RuntimeParams = user, st.Database(), token, st.RuntimeParams()
	w := h.p.warmAt // connections to d made ready (--prewarm), if any
	hc, err := connectWarm(ctx, cfg, func() (net.Conn, bool) { return w.Take(d) }, func(err error) { w.Stale(d, err) }, nil)
	if err != nil {
		return nil, err
	}
	s := newSession(h.p, hc, h.p.cfg.Variant.sessionAge(h.p.cfg.Logger))
	s.host = d.Host
	return s, nil
}

// Probe logs in to the Aurora instance d as user, in database, and reads
// the cluster's topology there; it implements proxy.Prober.
func (p *Proxy) Probe(ctx context.Context, d proxy.Destination, user, database, token string) (topology.Probe, error) {
	cfg, err := p.instanceConfig(d)
	if err != nil {
		return topology.Probe{}, err
	}
	cfg.User, cfg.Database, cfg.Password = user, database, token
	cfg.RuntimeParams = map[string]string{"application_name": "rds-iam-proxy topology"}
	var probe topology.Probe
	hc, err := pgwire.Connect(ctx, cfg, func(ctx context.Context, c *pgconn.PgConn) error {
		var err error
		probe, err = topology.ProbePostgres(ctx, c)
		return err
	})
	if err != nil {
		return probe, err
	}
	hc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	hc.Conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate: a polite goodbye
	hc.Conn.Close()
	return probe, nil
}

// ReadOnly says whether the server reported at login that it refuses
// writes (PostgreSQL 14 and later report both as a session starts); it
// implements proxy.ReadOnlySession, so that a login routed to a writer
// demoted since the topology was read is not handed to the client. The
// router's own probe judges a writer by the same session setting, so a
// role whose sessions are read-only everywhere never has a writer.
func (s *session) ReadOnly() bool {
	return s.params["in_hot_standby"] == "on" || s.params["default_transaction_read_only"] == "on"
}
