package validate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// Steps doctor adds for an Aurora cluster endpoint, after the token login:
// the proxy dials every member by its instance endpoint (verify-full for
// that name) and reads the topology as the IAM user, so a member whose
// certificate fails or a topology the user may not read breaks failover
// only on the day it happens; doctor says so now.
const (
	StepMembers  = "aurora members"
	StepTopology = "aurora topology"
)

// clusterMember is one instance of the cluster, as the RDS API lists it.
type clusterMember struct {
	id, host string
	port     int
	writer   bool
}

// clusterSteps are the Aurora steps when the endpoint is a cluster's
// writer or reader endpoint (none otherwise).
func (d *doctor) clusterSteps() []func(context.Context) Check {
	kind := topology.ParseEndpoint(d.host).Kind
	if kind != topology.Cluster && kind != topology.Reader {
		return nil
	}
	return []func(context.Context) Check{d.members, d.topology}
}

// members checks that every member's certificate, dialed at its instance
// endpoint (or its instance_dial_addresses entry), verifies against the
// bundle for the member's own name, and names each one's expiry.
func (d *doctor) members(ctx context.Context) Check {
	c := Check{Name: StepMembers, Status: Fail}
	certificate := memberCertificate
	if d.cfg.Engine == config.MySQL {
		certificate = memberCertificateMySQL
	}
	u, conf := d.tlsUp, (*tls.Config)(nil)
	if d.up.Trust != nil {
		u, conf = d.up.Trust.Current()
	}
	if conf == nil {
		return Check{Name: StepMembers, Status: Skip, Detail: "TLS is disabled: members' certificates not checked"}
	}
	if d.db == nil || d.db.Identifier == "" {
		return Check{Name: StepMembers, Status: Skip, Detail: "could not list the cluster's members: the RDS API was not asked or did not answer (see the IAM step)",
			Fix: "let this identity call rds:DescribeDBClusters and rds:DescribeDBInstances"}
	}
	id := d.db.Identifier
	if d.db.ClusterID != "" {
		id = d.db.ClusterID
	}
	ms, err := listMembers(ctx, d.up.RDS(), id)
	if err != nil {
		if cnc, ok := errors.AsType[*CouldNotCheck](err); ok {
			return Check{Name: StepMembers, Status: Skip, Detail: cnc.Error(),
				Fix: fmt.Sprintf("let this identity call rds:DescribeDBClusters and rds:DescribeDBInstances, or check by hand: aws rds describe-db-clusters --region %s --db-cluster-identifier %s --query 'DBClusters[0].DBClusterMembers'", d.region, id)}
		}
		c.Detail = fmt.Sprintf("cannot list the members of cluster %s: %v", id, err)
		return c
	}
	if len(ms) == 0 {
		// Aurora Serverless v1 lists no members; nothing to dial by name.
		return Check{Name: StepMembers, Status: Skip, Detail: fmt.Sprintf("the RDS API lists no members of cluster %s: no instance endpoints to check", id)}
	}
	dialAt, err := d.cfg.DialAddresses()
	if err != nil {
		c.Detail = "instance_dial_addresses: " + err.Error()
		c.Fix = "write instance_dial_addresses as NAME=HOST:PORT pairs separated by spaces"
		return c
	}
	var ok, bad []string
	var fixes []string
	for _, m := range ms {
		addr, mapped := dialAt[strings.ToLower(m.host)]
		if !mapped {
			addr = net.JoinHostPort(m.host, strconv.Itoa(m.port))
		}
		role := "reader"
		if m.writer {
			role = "writer"
		}
		mconf := conf.Clone()
		mconf.ServerName = m.host
		leaf, err := certificate(ctx, addr, mconf)
		if err != nil {
			mu := u
			mu.Host, mu.ServerName, mu.DialAddress = m.host, "", addr
			why := err.Error()
			if f, ok := mu.Explain(err, time.Now()); ok {
				why = f.Cause
				if f.Fix != "" {
					fixes = append(fixes, f.Fix)
				}
			}
			if mapped {
				fixes = append(fixes, fmt.Sprintf("%s is dialed at %s from instance_dial_addresses: check that this address reaches that instance", m.host, addr))
			}
			bad = append(bad, fmt.Sprintf("%s (%s, %s at %s): %s", m.id, role, m.host, addr, why))
			continue
		}
		ok = append(ok, fmt.Sprintf("%s (%s) valid until %s", m.id, role, leaf.NotAfter.UTC().Format(time.DateOnly)))
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d of %d members of cluster %s fail TLS verify-full against %s: %s", len(bad), len(ms), id, bundleName(u), strings.Join(bad, "; "))
		if len(ok) > 0 {
			c.Detail += "; the others verify: " + strings.Join(ok, ", ")
		}
		c.Fix = "after a failover the proxy dials these members by their instance endpoint; " + strings.Join(fixes, "; ")
		if len(fixes) == 0 {
			c.Fix += "check that each instance is available and reachable (security groups, instance_dial_addresses for tunnels)"
		}
		return c
	}
	return Check{Name: StepMembers, Status: OK, Detail: fmt.Sprintf("%d members of cluster %s verified against %s: %s", len(ms), id, bundleName(u), strings.Join(ok, ", "))}
}

// listMembers asks the RDS API for cluster id's members and their
// instance endpoints. Errors are classified as DescribeEndpoint's are.
func listMembers(ctx context.Context, c *rds.Client, id string) ([]clusterMember, error) {
	out, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	if err != nil {
		return nil, classify(err, "rds:DescribeDBClusters", id)
	}
	if len(out.DBClusters) == 0 {
		return nil, &notFound{action: "rds:DescribeDBClusters", id: id}
	}
	var ms []clusterMember
	for _, m := range out.DBClusters[0].DBClusterMembers {
		mid := aws.ToString(m.DBInstanceIdentifier)
		in, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(mid)})
		if err != nil {
			return nil, classify(err, "rds:DescribeDBInstances", mid)
		}
		if len(in.DBInstances) == 0 || in.DBInstances[0].Endpoint == nil {
			return nil, fmt.Errorf("member %s has no endpoint yet (is it still being created?)", mid)
		}
		ep := in.DBInstances[0].Endpoint
		ms = append(ms, clusterMember{id: mid, host: aws.ToString(ep.Address), port: int(aws.ToInt32(ep.Port)), writer: aws.ToBool(m.IsClusterWriter)})
	}
	return ms, nil
}

// memberCertificate dials a PostgreSQL member at addr, asks for TLS and
// verifies its certificate with conf; it returns the leaf.
func memberCertificate(ctx context.Context, addr string, conf *tls.Config) (*x509.Certificate, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil { // SSLRequest
		return nil, fmt.Errorf("cannot send the SSLRequest: %w", err)
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return nil, fmt.Errorf("no answer to the SSLRequest: %w", err)
	}
	if answer[0] != 'S' {
		return nil, fmt.Errorf("the server refused TLS (answered %q); an Aurora instance always offers it", answer[0])
	}
	tc, err := tlsca.Handshake(ctx, conn, conf)
	if err != nil {
		return nil, err
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("no certificate")
	}
	return cs.PeerCertificates[0], nil
}

// topology logs in to the endpoint as the IAM user, as the proxy's
// topology monitor does, and runs the engine's topology SQL.
func (d *doctor) topology(ctx context.Context) Check {
	c := Check{Name: StepTopology, Status: Fail}
	if d.cfg.Engine == config.MySQL {
		return d.topologyMySQL(ctx)
	}
	q := topology.SQL[topology.Postgres]
	token, err := d.up.Token(ctx, d.o.DBUser)
	if err != nil {
		c.Detail = "cannot sign a token: " + err.Error()
		return c
	}
	dl, err := postgres.NewDialer(d.up.PostgresUpstream())
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	hc, err := dl.Login(ctx, postgres.Login{User: d.o.DBUser, Database: d.o.Database, Password: token,
		Params: map[string]string{"application_name": "rds-iam-proxy doctor"}})
	if err != nil {
		c.Detail = fmt.Sprintf("cannot log in as %s to read the topology: %v", d.o.DBUser, err)
		return c
	}
	conn, err := pgconn.Construct(hc)
	if err != nil {
		hc.Conn.Close()
		c.Detail = err.Error()
		return c
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p, err := topology.ProbePostgres(ctx, conn)
	if err != nil {
		c.Detail = fmt.Sprintf("%s cannot read the cluster's topology (%s): %v", d.o.DBUser, q.Topology, err)
		c.Fix = fmt.Sprintf("the proxy follows failovers by running this query as %s: connect as the master user and run GRANT EXECUTE ON FUNCTION aurora_replica_status() TO %s; (and aurora_db_instance_identifier())", d.o.DBUser, d.o.DBUser)
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42883" {
			c.Fix = "the Aurora topology functions (aurora_replica_status(), aurora_db_instance_identifier()) do not exist on the server behind this endpoint: it is not an Aurora PostgreSQL instance; point --endpoint (and --dial-address) at the cluster endpoint"
		}
		return c
	}
	return d.topologyRead(p)
}

// topologyRead is the topology step's verdict on what the IAM user read.
func (d *doctor) topologyRead(p topology.Probe) Check {
	writer, readers := topology.Members(p.Rows, time.Now())
	if writer == "" {
		return Check{Name: StepTopology, Status: Fail, Detail: fmt.Sprintf("the topology %s reads names no writer (%d rows)", d.o.DBUser, len(p.Rows)),
			Fix: "the cluster may be failing over: run doctor again in a minute"}
	}
	return Check{Name: StepTopology, Status: OK, Detail: fmt.Sprintf("%s reads the topology on %s: writer %s, readers %s", d.o.DBUser, p.Self, writer, strings.Join(readers, ", "))}
}
