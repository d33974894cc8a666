package emulator

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// auroraMySQL is Aurora MySQL inside a Cluster over MariaDB servers.
// MariaDB has neither information_schema.replica_host_status nor
// @@aurora_server_id, so each member's front answers the proxy's three
// topology queries (topology.SQL[topology.MySQL]) from the cluster's state
// (see mysqlTopology); a server turns read-only with SET GLOBAL read_only,
// which gives users without SUPER or READ ONLY ADMIN the error Aurora
// MySQL readers give: 1290, "... running with the --read-only option so it
// cannot execute this statement".
type auroraMySQL struct{ c *Cluster }

// StartAuroraMySQL starts an emulated Aurora MySQL cluster over
// o.Instances' MariaDB servers (AuroraInstance.Admin: a go-sql-driver DSN
// of a root login): it makes the first instance writable and the others
// read-only, and starts a MySQL front per instance from the o.MySQL
// template (the IAM users, the backend password and TLS) and the
// forwarders. The IAM users must hold neither SUPER nor READ ONLY ADMIN,
// or read-only members would take their writes.
func (a *AWS) StartAuroraMySQL(ctx context.Context, ca *CA, o AuroraOptions) (*Cluster, error) {
	if o.Engine != "mysql" && o.Engine != "" {
		return nil, fmt.Errorf("emulator: StartAuroraMySQL with Engine %q: use the engine's own Start", o.Engine)
	}
	o.Engine = "mysql"
	if o.Port == 0 {
		o.Port = 3306
	}
	o.Databases = nil
	return a.startAurora(ctx, ca, o, func(c *Cluster) clusterEngine { return &auroraMySQL{c: c} })
}

// prepare checks that the admin login works, so that a wrong DSN is named
// at start rather than at the first failover.
func (e *auroraMySQL) prepare(ctx context.Context, in AuroraInstance) error {
	return e.admin(ctx, in, "SELECT 1")
}

// admin runs statements in order on one root session of in's server.
func (e *auroraMySQL) admin(ctx context.Context, in AuroraInstance, statements ...string) error {
	cfg, err := mysql.ParseDSN(in.Admin)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin DSN: %w", in.ID, err)
	}
	cfg.Timeout = 10 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin DSN: %w", in.ID, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sess, err := db.Conn(cctx)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin login: %w", in.ID, err)
	}
	defer sess.Close()
	for _, s := range statements {
		if _, err := sess.ExecContext(cctx, s); err != nil {
			return fmt.Errorf("emulator: Aurora instance %s: %s: %w", in.ID, s, err)
		}
	}
	return nil
}

// setReadOnly switches read_only. MariaDB does not wait for open
// transactions (their next write, and their COMMIT, fail with 1290, as on
// a writer demoted under them); lock_wait_timeout bounds the wait for a
// session holding the global read lock (FLUSH TABLES WITH READ LOCK), so
// that a failover never hangs on one.
func (e *auroraMySQL) setReadOnly(ctx context.Context, in AuroraInstance, ro bool) error {
	v := "OFF"
	if ro {
		v = "ON"
	}
	return e.admin(ctx, in, "SET SESSION lock_wait_timeout = 10", "SET GLOBAL read_only = "+v)
}

// startFront starts in's MySQL front from the template, with the topology
// shim on.
func (e *auroraMySQL) startFront(a *AWS, ca *CA, in AuroraInstance, name string, cert *tls.Certificate) (*instance, error) {
	o := e.c.o.MySQL
	o.Endpoint, o.Port, o.ResourceID, o.Listen, o.Backend, o.Certificate = name, e.c.o.Port, instanceResourceID(in.ID), "", in.Backend, cert
	if o.Logger == nil {
		o.Logger = e.c.o.Logger
	}
	id := in.ID
	o.shim = func(query string) (string, bool) { return e.c.mysqlTopology(id, query) }
	front, err := a.StartMySQL(ca, o)
	if err != nil {
		return nil, err
	}
	return front.instance, nil
}

// writerMoved has nothing to tell the servers: the fronts read the
// cluster's state at each query.
func (e *auroraMySQL) writerMoved(context.Context, string) error { return nil }

// mysqlTopology is the shim of instance id's front: for one of the exact
// topology queries it returns the statement MariaDB runs instead, one
// whose result set is what Aurora MySQL would answer on that instance
// (the same columns, named by the same expressions, now evaluated over
// literals built from the cluster's state), so that MariaDB itself frames
// the result for the session (DEPRECATE_EOF, status flags) in the order
// of the session's commands. Any other text: ok false.
func (c *Cluster) mysqlTopology(id, query string) (string, bool) {
	q := topology.SQL[topology.MySQL]
	switch query {
	case q.Topology:
		return strings.Replace(q.Topology, "information_schema.replica_host_status", c.replicaHostStatus(time.Now()), 1), true
	case q.Self:
		return strings.Replace(q.Self, "@@aurora_server_id", sqlquote.MySQLString(id)+" AS `@@aurora_server_id`", 1), true
	case q.ReadOnly:
		c.mu.Lock()
		ro := c.readOnly[id]
		c.mu.Unlock()
		v := "0"
		if ro {
			v = "1"
		}
		return strings.Replace(q.ReadOnly, "@@innodb_read_only", v+" AS `@@innodb_read_only`", 1), true
	}
	return "", false
}

// replicaHostStatus is a derived table standing in for
// information_schema.replica_host_status: a row per member, sorted by
// server id, with Aurora's column names; the writer's SESSION_ID is
// MASTER_SESSION_ID, a reader's a fixed UUID-shaped id of its own; every
// member was updated at now (UTC, as Aurora reports).
func (c *Cluster) replicaHostStatus(now time.Time) string {
	c.mu.Lock()
	writer := c.writer
	c.mu.Unlock()
	ids := c.Instances()
	slices.Sort(ids)
	stamp := "TIMESTAMP'" + now.UTC().Format("2006-01-02 15:04:05.000000") + "'"
	rows := make([]string, len(ids))
	for n, id := range ids {
		session := "MASTER_SESSION_ID"
		if id != writer {
			session = readerSessionID(id)
		}
		rows[n] = fmt.Sprintf("SELECT %s AS SERVER_ID, %s AS SESSION_ID, %s AS LAST_UPDATE_TIMESTAMP", sqlquote.MySQLString(id), sqlquote.MySQLString(session), stamp)
	}
	return "(" + strings.Join(rows, " UNION ALL ") + ") AS replica_host_status"
}

// readerSessionID is a reader's SESSION_ID: UUID-shaped like Aurora's,
// fixed per server id.
func readerSessionID(id string) string {
	h := fmt.Sprintf("%x", sha256.Sum256([]byte(id)))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
