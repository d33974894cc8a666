package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// AuroraInstance is one member of an emulated Aurora PostgreSQL cluster: a
// real PostgreSQL server of its own behind an RDS front.
type AuroraInstance struct {
	// ID is the instance's server id (its first DNS label): lower-case
	// letters, digits and hyphens.
	ID string
	// Backend is the host:port of its PostgreSQL server (clients' logins,
	// as PostgresOptions.Backend).
	Backend string
	// Admin is a connection string for a superuser login to the same
	// server ("host=127.0.0.1 port=N user=postgres"): the emulator creates
	// the topology functions with it and switches the server between
	// read-only and writable. Its database is replaced by each of
	// AuroraOptions.Databases in turn.
	Admin string
}

// AuroraOptions configure an emulated Aurora PostgreSQL cluster.
type AuroraOptions struct {
	// ClusterID names the cluster: its endpoints are
	// CLUSTERID.cluster-SUFFIX.REGION.rds.amazonaws.com (writer) and
	// CLUSTERID.cluster-ro-SUFFIX... (reader); default "emulated-aurora".
	ClusterID string
	// Suffix is the account's DNS label shared by every endpoint of the
	// cluster (instances are ID.SUFFIX.REGION.rds.amazonaws.com); default
	// "c0ffee123456".
	Suffix string
	// ResourceID is the DbClusterResourceId tokens are authorized on;
	// default "cluster-EMULATEDAURORA0001".
	ResourceID string
	// Port is the endpoints' port (in tokens); default 5432.
	Port int
	// Instances are the members, at least two; the first starts as the
	// writer.
	Instances []AuroraInstance
	// Databases are where the topology functions are created (every
	// database clients use); default "postgres".
	Databases []string
	// StaleDNS is how long the cluster (writer) name keeps dialing the old
	// writer after a failover, as cluster DNS does (15-20 s on AWS);
	// default 20 s, negative: it follows at once.
	StaleDNS time.Duration
	// RestartDelay is how long an old writer refuses connections after a
	// failover that restarts it; default 1 s.
	RestartDelay time.Duration
	Logger       *slog.Logger
}

// FailoverOptions say how Cluster.Failover goes.
type FailoverOptions struct {
	// KeepSessions keeps the old writer's sessions open (a switchover
	// without restart: they now get read-only errors) instead of cutting
	// them and refusing connections for RestartDelay, as a failover does.
	KeepSessions bool
}

// Cluster is a running emulated Aurora PostgreSQL cluster: one RDS front per
// instance, all authorizing tokens on the cluster's resource id; a TCP
// forwarder per instance (InstanceAddr: where clients dial an instance
// endpoint, which a failover can cut), one playing the cluster writer name's
// DNS (ClusterAddr, which follows the writer only StaleDNS after a failover)
// and one playing the reader name's (ReaderAddr, round robin over the
// readers). Each backend answers aurora_replica_status() and
// aurora_db_instance_identifier() from a table the emulator keeps.
type Cluster struct {
	o       AuroraOptions
	fronts  map[string]*Postgres
	fwd     map[string]*forwarder // per instance
	cluster *forwarder
	reader  *forwarder
	log     *slog.Logger

	mu        sync.Mutex
	writer    string               // the instance id that is writer now
	dnsWriter string               // where the cluster name dials
	down      map[string]time.Time // instance id -> refuses connections until
	dnsTimer  *time.Timer
	next      int // round robin over readers
	failing   sync.Mutex
}

var auroraIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// StartAuroraPostgres starts an emulated Aurora PostgreSQL cluster over
// o.Instances' servers: it creates the topology functions in each, makes
// the first instance writable and the others read-only
// (default_transaction_read_only through ALTER SYSTEM), and starts the
// fronts and forwarders.
func (a *AWS) StartAuroraPostgres(ctx context.Context, ca *CA, o AuroraOptions) (c *Cluster, err error) {
	if len(o.Instances) < 2 {
		return nil, errors.New("emulator: an Aurora cluster needs at least two instances")
	}
	if o.ClusterID == "" {
		o.ClusterID = "emulated-aurora"
	}
	if o.Suffix == "" {
		o.Suffix = "c0ffee123456"
	}
	if o.ResourceID == "" {
		o.ResourceID = "cluster-EMULATEDAURORA0001"
	}
	if o.Port == 0 {
		o.Port = 5432
	}
	if len(o.Databases) == 0 {
		o.Databases = []string{"postgres"}
	}
	if o.StaleDNS == 0 {
		o.StaleDNS = 20 * time.Second
	}
	if o.RestartDelay == 0 {
		o.RestartDelay = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, in := range o.Instances {
		if !auroraIDPattern.MatchString(in.ID) {
			return nil, fmt.Errorf("emulator: Aurora instance id %q: use lower-case letters, digits and hyphens", in.ID)
		}
	}
	c = &Cluster{o: o, fronts: map[string]*Postgres{}, fwd: map[string]*forwarder{}, down: map[string]time.Time{},
		writer: o.Instances[0].ID, dnsWriter: o.Instances[0].ID, log: o.Logger.With("emulator", "aurora", "cluster", o.ClusterID)}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, in := range o.Instances {
		if err := c.setUp(ctx, in); err != nil {
			return nil, err
		}
	}
	for n, in := range o.Instances {
		if err := c.setReadOnly(ctx, in, n != 0); err != nil {
			return nil, err
		}
	}
	for _, in := range o.Instances {
		name := c.InstanceName(in.ID)
		cert, err := ca.ServerCert(name, c.WriterName(), c.ReaderName())
		if err != nil {
			return nil, fmt.Errorf("emulator: server certificate: %w", err)
		}
		front, err := a.StartPostgres(ca, PostgresOptions{Endpoint: name, Port: o.Port, Backend: in.Backend,
			ResourceID: "db-AURORA" + strings.ToUpper(strings.ReplaceAll(in.ID, "-", "")), Certificate: &cert, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		c.fronts[in.ID] = front
		front.JoinCluster(o.ClusterID, o.ResourceID)
		front.AcceptTokensFor(c.WriterName(), c.ReaderName())
	}
	c.registerMembers()
	// The forwarders start once every front is there (they read c.fronts).
	for _, in := range o.Instances {
		id := in.ID
		f, err := startForwarder(func() string { return c.instanceTarget(id) })
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.fwd[id] = f
		c.mu.Unlock()
	}
	if c.cluster, err = startForwarder(c.clusterTarget); err != nil {
		return nil, err
	}
	if c.reader, err = startForwarder(c.readerTarget); err != nil {
		return nil, err
	}
	return c, nil
}

// topologySQL creates the emulator's topology table and the two functions
// Aurora PostgreSQL has, over it. Every row is reported as updated now:
// every member is alive.
const topologySQL = `CREATE SCHEMA IF NOT EXISTS aurora_emulator;
CREATE TABLE IF NOT EXISTS aurora_emulator.replica_status (server_id text PRIMARY KEY, is_writer boolean NOT NULL);
DELETE FROM aurora_emulator.replica_status;
%s
CREATE OR REPLACE FUNCTION public.aurora_replica_status()
  RETURNS TABLE (server_id text, session_id text, last_update_timestamp timestamptz) LANGUAGE sql STABLE
  AS $$ SELECT r.server_id, CASE WHEN r.is_writer THEN 'MASTER_SESSION_ID' ELSE md5(r.server_id) END, now()
        FROM aurora_emulator.replica_status r ORDER BY r.server_id $$;
CREATE OR REPLACE FUNCTION public.aurora_db_instance_identifier() RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT %s::text $$;
GRANT USAGE ON SCHEMA aurora_emulator TO PUBLIC;
GRANT SELECT ON aurora_emulator.replica_status TO PUBLIC;`

// setUp creates the topology functions in each database of in's server.
func (c *Cluster) setUp(ctx context.Context, in AuroraInstance) error {
	var rows []string
	for n, m := range c.o.Instances {
		rows = append(rows, fmt.Sprintf("('%s', %t)", m.ID, n == 0))
	}
	sql := fmt.Sprintf(topologySQL, "INSERT INTO aurora_emulator.replica_status VALUES "+strings.Join(rows, ", ")+";", "'"+in.ID+"'")
	for _, db := range c.o.Databases {
		if err := c.admin(ctx, in, db, sql); err != nil {
			return err
		}
	}
	return nil
}

// admin runs sql on in's server as its superuser, in database db.
func (c *Cluster) admin(ctx context.Context, in AuroraInstance, db, sql string) error {
	cfg, err := pgconn.ParseConfig(in.Admin)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin connection string: %w", in.ID, err)
	}
	cfg.Database = db
	// The admin's own writes (the topology table) go through on a
	// read-only member too.
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin login: %w", in.ID, err)
	}
	defer conn.Close(context.WithoutCancel(cctx))
	if _, err := conn.Exec(cctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: %w", in.ID, err)
	}
	return nil
}

// setReadOnly makes in's server refuse writes (as an Aurora reader does:
// "cannot execute INSERT in a read-only transaction", 25006) or accept
// them. A reload applies it to open sessions too, at their next command.
func (c *Cluster) setReadOnly(ctx context.Context, in AuroraInstance, ro bool) error {
	v := "off"
	if ro {
		v = "on"
	}
	// ALTER SYSTEM cannot run in a transaction block: two queries.
	if err := c.admin(ctx, in, "postgres", "ALTER SYSTEM SET default_transaction_read_only = "+v); err != nil {
		return err
	}
	return c.admin(ctx, in, "postgres", "SELECT pg_reload_conf()")
}

// Failover makes instance to the writer: the old writer turns read-only
// and (unless fo.KeepSessions) has its sessions cut and refuses
// connections for RestartDelay; to turns writable; every member's topology
// names to as writer; the cluster name follows StaleDNS later.
func (c *Cluster) Failover(ctx context.Context, to string, fo FailoverOptions) error {
	c.failing.Lock()
	defer c.failing.Unlock()
	newW, ok := c.instance(to)
	if !ok {
		return fmt.Errorf("emulator: no Aurora instance %q", to)
	}
	c.mu.Lock()
	oldID := c.writer
	c.mu.Unlock()
	if oldID == to {
		return fmt.Errorf("emulator: %s is already the writer", to)
	}
	old, _ := c.instance(oldID)
	if !fo.KeepSessions {
		// Down until it is read-only, and RestartDelay more: it comes back
		// as a reader, as an Aurora writer restarted by a failover does.
		c.mu.Lock()
		c.down[oldID] = time.Now().Add(time.Hour)
		c.mu.Unlock()
		c.fwd[oldID].cut()
	}
	if err := c.setReadOnly(ctx, old, true); err != nil {
		return err
	}
	if !fo.KeepSessions {
		c.mu.Lock()
		c.down[oldID] = time.Now().Add(c.o.RestartDelay)
		c.mu.Unlock()
	}
	if err := c.setReadOnly(ctx, newW, false); err != nil {
		return err
	}
	update := fmt.Sprintf("UPDATE aurora_emulator.replica_status SET is_writer = (server_id = '%s')", to)
	for _, in := range c.o.Instances {
		for _, db := range c.o.Databases {
			if err := c.admin(ctx, in, db, update); err != nil {
				return err
			}
		}
	}
	c.reportWriter(to)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writer = to
	if c.dnsTimer != nil {
		c.dnsTimer.Stop()
	}
	if c.o.StaleDNS < 0 {
		c.dnsWriter = to
	} else {
		c.dnsTimer = time.AfterFunc(c.o.StaleDNS, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.dnsWriter = c.writer
		})
	}
	c.log.Info("failover", "from", oldID, "to", to, "keep_sessions", fo.KeepSessions)
	return nil
}

func (c *Cluster) instance(id string) (AuroraInstance, bool) {
	i := slices.IndexFunc(c.o.Instances, func(in AuroraInstance) bool { return in.ID == id })
	if i < 0 {
		return AuroraInstance{}, false
	}
	return c.o.Instances[i], true
}

// instanceTarget is where instance id's forwarder sends a new connection
// ("" while it restarts).
func (c *Cluster) instanceTarget(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Now().Before(c.down[id]) {
		return ""
	}
	return c.fronts[id].Addr()
}

// clusterTarget is where the cluster name resolves: the writer as cluster
// DNS last saw it.
func (c *Cluster) clusterTarget() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fwd[c.dnsWriter].addr()
}

// readerTarget is the reader name: the readers in turn, the writer when
// there is none.
func (c *Cluster) readerTarget() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var readers []string
	for _, in := range c.o.Instances {
		if in.ID != c.writer {
			readers = append(readers, in.ID)
		}
	}
	if len(readers) == 0 {
		return c.fwd[c.writer].addr()
	}
	c.next++
	return c.fwd[readers[c.next%len(readers)]].addr()
}

// Writer is the id of the current writer.
func (c *Cluster) Writer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
}

// WriterName is the cluster (writer) endpoint name.
func (c *Cluster) WriterName() string {
	return c.o.ClusterID + ".cluster-" + c.o.Suffix + "." + c.region() + ".rds.amazonaws.com"
}

// ReaderName is the cluster's reader endpoint name.
func (c *Cluster) ReaderName() string {
	return c.o.ClusterID + ".cluster-ro-" + c.o.Suffix + "." + c.region() + ".rds.amazonaws.com"
}

// InstanceName is instance id's endpoint name.
func (c *Cluster) InstanceName(id string) string {
	return id + "." + c.o.Suffix + "." + c.region() + ".rds.amazonaws.com"
}

func (c *Cluster) region() string {
	for _, f := range c.fronts {
		return f.aws.Region()
	}
	return "us-east-1"
}

// Port is the endpoints' port, for tokens.
func (c *Cluster) Port() int { return c.o.Port }

// ClusterAddr is where the cluster (writer) name dials now.
func (c *Cluster) ClusterAddr() string { return c.cluster.addr() }

// ReaderAddr is where the reader name dials.
func (c *Cluster) ReaderAddr() string { return c.reader.addr() }

// InstanceAddr is where instance id's endpoint dials.
func (c *Cluster) InstanceAddr(id string) string { return c.fwd[id].addr() }

// InstanceAddrs maps every instance endpoint name to its dial address (the
// proxy's instance_dial_addresses).
func (c *Cluster) InstanceAddrs() map[string]string {
	m := map[string]string{}
	for id, f := range c.fwd {
		m[c.InstanceName(id)] = f.addr()
	}
	return m
}

// Instances are the member ids, the first writer at start.
func (c *Cluster) Instances() []string {
	ids := make([]string, len(c.o.Instances))
	for n, in := range c.o.Instances {
		ids[n] = in.ID
	}
	return ids
}

// ConnectPolicy allows rds-db:connect on the cluster as each of users.
func (c *Cluster) ConnectPolicy(users ...string) Policy {
	for _, f := range c.fronts {
		return f.ConnectPolicy(users...)
	}
	return Policy{}
}

// Close stops the forwarders and fronts.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.dnsTimer != nil {
		c.dnsTimer.Stop()
	}
	c.mu.Unlock()
	for _, f := range []*forwarder{c.cluster, c.reader} {
		if f != nil {
			f.Close()
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.fwd)) {
		c.fwd[id].Close()
	}
	for _, f := range c.fronts {
		f.Close()
	}
	return nil
}
