package launch

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// newRouter builds the Aurora router for up when its endpoint is a
// cluster's writer or reader endpoint (nil otherwise): new connections
// then follow the topology, not the cluster's DNS. The engine's Prober is
// set once the engine is built.
func newRouter(up *Upstream, log *slog.Logger) (*proxy.Router, error) {
	c := up.Config
	switch c.Route {
	case "", "writer", "reader":
	default:
		return nil, fmt.Errorf("route %q: want writer or reader", c.Route)
	}
	kind := topology.ParseEndpoint(up.Endpoint.Host).Kind
	if kind != topology.Cluster && kind != topology.Reader {
		if c.Route == "reader" {
			return nil, fmt.Errorf("route reader is for an Aurora cluster endpoint (NAME.cluster-ID.REGION.rds.amazonaws.com); %s is %s", up.Endpoint.Host, kind)
		}
		return nil, nil
	}
	if c.Engine != config.Postgres && c.Engine != config.MySQL {
		return nil, nil // Aurora is PostgreSQL or MySQL
	}
	addrs, err := c.DialAddresses()
	if err != nil {
		return nil, fmt.Errorf("instance_dial_addresses: %w", err)
	}
	r := &proxy.Router{
		Cluster: up.Endpoint.Host, Port: up.Endpoint.Port, Dial: up.DialAddr(),
		Reader: c.Route == "reader" || kind == topology.Reader && c.Route != "writer",
		Wait:   time.Duration(c.FailoverWait), Refresh: time.Duration(c.TopologyRefresh), DialAddr: addrs,
		Tokens: up.Tokens, Region: up.Region, Log: log,
	}
	if ro, ok := c.Observer.(proxy.RouteObserver); ok {
		r.Observer = ro
	}
	return r, nil
}
