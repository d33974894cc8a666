package validate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// memberUser is the user the members step's MySQL logins name: none
// exists, so the login fails after TLS, which is all the step needs.
const memberUser = "rds-iam-proxy-doctor-tls-check"

// memberCertificateMySQL dials a MySQL member at addr, reads its greeting,
// upgrades to TLS verified with conf and returns the leaf. It then ends
// the handshake with a failed login (no password) rather than a close in
// its middle, which MySQL counts against max_connect_errors.
func memberCertificateMySQL(ctx context.Context, addr string, conf *tls.Config) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	conf = conf.Clone()
	verify := conf.VerifyConnection
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if verify != nil {
			if err := verify(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) > 0 {
			leaf = cs.PeerCertificates[0]
		}
		return nil
	}
	p, err := mysql.Dial(ctx, mysql.Upstream{Host: conf.ServerName, DialAddress: addr, TLS: conf})
	if err != nil {
		return nil, fmt.Errorf("cannot connect: %w", err)
	}
	_, err = p.Login(ctx, mywire.Login{User: memberUser, Plugin: mywire.PluginNativePassword,
		Client: &mywire.HandshakeResponse{Caps: mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth, MaxPacket: 1 << 24}})
	if _, refused := errors.AsType[*mywire.ServerError](err); leaf != nil && (err == nil || refused) {
		return leaf, nil
	}
	if err == nil {
		err = errors.New("no certificate")
	}
	return nil, err
}

// topologyMySQL logs in to the endpoint as the IAM user, as the proxy's
// topology monitor does, and runs the three Aurora MySQL topology queries.
func (d *doctor) topologyMySQL(ctx context.Context) Check {
	c := Check{Name: StepTopology, Status: Fail}
	q := topology.SQL[topology.MySQL]
	token, err := d.up.Token(ctx, d.o.DBUser)
	if err != nil {
		c.Detail = "cannot sign a token: " + err.Error()
		return c
	}
	u := d.up.MySQLUpstream()
	p, err := mysql.ProbeAt(ctx, u, proxy.Destination{Host: u.Host, Port: u.Port, DialAddr: u.DialAddr()}, d.o.DBUser, d.o.Database, token)
	if err != nil {
		c.Detail = fmt.Sprintf("%s cannot read the cluster's topology (%s; %s; %s): %v", d.o.DBUser, q.Self, q.ReadOnly, q.Topology, err)
		c.Fix = fmt.Sprintf("the proxy follows failovers by running these queries as %s: log in as %s with the mysql client and run them to see what the server refuses, then grant what it names", d.o.DBUser, d.o.DBUser)
		if se, ok := errors.AsType[*mywire.ServerError](err); ok && (se.Code == 1109 || se.Code == 1146 || se.Code == 1193) {
			// Unknown table, or unknown system variable (@@aurora_server_id).
			c.Fix = "information_schema.replica_host_status or @@aurora_server_id does not exist on the server behind this endpoint: it is not an Aurora MySQL instance; point --endpoint (and --dial-address) at the cluster endpoint"
		}
		return c
	}
	return d.topologyRead(p)
}
