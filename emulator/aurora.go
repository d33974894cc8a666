package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// AuroraInstance is one member of an emulated Aurora cluster: a real
// PostgreSQL (or MariaDB) server of its own behind an RDS front.
type AuroraInstance struct {
	// ID is the instance's server id (its first DNS label): lower-case
	// letters, digits and hyphens.
	ID string
	// Backend is the host:port of its server (clients' logins, as
	// PostgresOptions.Backend or MySQLOptions.Backend).
	Backend string
	// Admin is a superuser login to the same server, with which the
	// emulator switches it between read-only and writable. PostgreSQL: a
	// connection string ("host=127.0.0.1 port=N user=postgres"), with which
	// the topology functions are created too; its database is replaced by
	// each of AuroraOptions.Databases in turn. MySQL: a go-sql-driver DSN
	// of a root login ("root@tcp(127.0.0.1:N)/").
	Admin string
}

// AuroraOptions configure an emulated Aurora cluster.
type AuroraOptions struct {
	// Engine is "postgres" (the default) or "mysql"; StartAuroraPostgres
	// and StartAuroraMySQL check it.
	Engine string
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
	// Port is the endpoints' port (in tokens); default 5432 (3306 for
	// mysql).
	Port int
	// Instances are the members, at least two; the first starts as the
	// writer.
	Instances []AuroraInstance
	// Databases are where the topology functions are created (every
	// database clients use); default "postgres". PostgreSQL only: Aurora
	// MySQL's topology is answered by the fronts (aurora_mysql.go).
	Databases []string
	// MySQL is the template of each instance's MySQL front (mysql only):
	// BackendPassword, BackendTLS, IAMUsers, MySQL8, AlwaysSwitch, Logger
	// are used as given; Endpoint, Port, ResourceID, Listen, Backend and
	// Certificate are set per instance by the cluster.
	MySQL MySQLOptions
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

// Cluster is a running emulated Aurora cluster: one RDS front per
// instance, all authorizing tokens on the cluster's resource id; a TCP
// forwarder per instance (InstanceAddr: where clients dial an instance
// endpoint, which a failover can cut), one playing the cluster writer name's
// DNS (ClusterAddr, which follows the writer only StaleDNS after a failover)
// and one playing the reader name's (ReaderAddr, round robin over the
// readers). The engine (clusterEngine) is what differs between Aurora
// PostgreSQL and Aurora MySQL: the fronts, how a server learns the topology
// and how it turns read-only.
type Cluster struct {
	o       AuroraOptions
	engine  clusterEngine
	fronts  map[string]*instance
	fwd     map[string]*forwarder // per instance
	cluster *forwarder
	reader  *forwarder
	log     *slog.Logger

	mu        sync.Mutex
	writer    string               // the instance id that is writer now
	readOnly  map[string]bool      // instance id -> its server refuses writes now
	dnsWriter string               // where the cluster name dials
	down      map[string]time.Time // instance id -> refuses connections until
	dnsTimer  *time.Timer
	next      int // round robin over readers
	failing   sync.Mutex
}

// clusterEngine is what an Aurora engine does inside a Cluster; the rest
// (names, forwarders, stale DNS, restarts, the RDS API) is the same for
// both.
type clusterEngine interface {
	// prepare readies in's server before any front starts.
	prepare(ctx context.Context, in AuroraInstance) error
	// setReadOnly makes in's server refuse writes as an Aurora reader
	// does, or accept them, for open sessions too.
	setReadOnly(ctx context.Context, in AuroraInstance, ro bool) error
	// startFront starts in's RDS front for the endpoint name with cert.
	startFront(a *AWS, ca *CA, in AuroraInstance, name string, cert *tls.Certificate) (*instance, error)
	// writerMoved tells the servers that to is the writer now (once the
	// read-only switches are done; before Writer() says so).
	writerMoved(ctx context.Context, to string) error
}

var auroraIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// StartAuroraPostgres starts an emulated Aurora PostgreSQL cluster over
// o.Instances' servers: it creates the topology functions in each, makes
// the first instance writable and the others read-only
// (default_transaction_read_only through ALTER SYSTEM), and starts the
// fronts and forwarders.
func (a *AWS) StartAuroraPostgres(ctx context.Context, ca *CA, o AuroraOptions) (*Cluster, error) {
	if o.Engine != "" && o.Engine != "postgres" {
		return nil, fmt.Errorf("emulator: StartAuroraPostgres with Engine %q: use the engine's own Start", o.Engine)
	}
	o.Engine = "postgres"
	if o.Port == 0 {
		o.Port = 5432
	}
	if len(o.Databases) == 0 {
		o.Databases = []string{"postgres"}
	}
	return a.startAurora(ctx, ca, o, func(c *Cluster) clusterEngine { return &auroraPostgres{c: c} })
}

// startAurora starts a cluster of either engine: o.Engine and o.Port are
// set by the caller.
func (a *AWS) startAurora(ctx context.Context, ca *CA, o AuroraOptions, engine func(*Cluster) clusterEngine) (c *Cluster, err error) {
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
	c = &Cluster{o: o, fronts: map[string]*instance{}, fwd: map[string]*forwarder{}, down: map[string]time.Time{},
		readOnly: map[string]bool{}, writer: o.Instances[0].ID, dnsWriter: o.Instances[0].ID,
		log: o.Logger.With("emulator", "aurora", "engine", o.Engine, "cluster", o.ClusterID)}
	c.engine = engine(c)
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, in := range o.Instances {
		if err := c.engine.prepare(ctx, in); err != nil {
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
		front, err := c.engine.startFront(a, ca, in, name, &cert)
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

// instanceResourceID is the DbiResourceId of instance id's front.
func instanceResourceID(id string) string {
	return "db-AURORA" + strings.ToUpper(strings.ReplaceAll(id, "-", ""))
}

// setReadOnly switches in's server and records it (the MySQL fronts answer
// @@innodb_read_only from the record).
func (c *Cluster) setReadOnly(ctx context.Context, in AuroraInstance, ro bool) error {
	if err := c.engine.setReadOnly(ctx, in, ro); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readOnly[in.ID] = ro
	return nil
}

// Failover makes instance to the writer: the old writer turns read-only
// and (unless fo.KeepSessions) has its sessions cut and refuses
// connections for RestartDelay; to turns writable; every member's topology
// names to as writer; the cluster name follows StaleDNS later. The same
// for both engines.
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
	if err := c.engine.writerMoved(ctx, to); err != nil {
		return err
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

// Engine is the cluster's engine: "postgres" or "mysql".
func (c *Cluster) Engine() string { return c.o.Engine }

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
