package emulator

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// instance is what every emulated RDS front shares: its identity (endpoint
// name, port, resource id, and so its dbuser ARNs), its TLS certificate,
// and its listener and accept loop (accept.go). The engine fronts embed it
// and add their protocol.
type instance struct {
	aws        *AWS
	endpoint   string
	port       int
	resourceID string
	tls        *tls.Config
	log        *slog.Logger

	db        *dbRecord // what the RDS API says about this front
	aliases   []string  // more names tokens may be signed for (AcceptTokensFor); under aws.mu
	ln        net.Listener
	cancel    context.CancelFunc // ends the accept loop and cuts open connections
	done      chan struct{}      // closed when the accept loop has ended
	conns     sync.WaitGroup     // open connections
	closeOnce sync.Once

	pause    pauseState   // see Pause
	attempts atomic.Int64 // connections accepted
	verify   verifyLimit  // the emulated throttle on IAM logins
}

// instanceOptions are the fields both engines' options have.
type instanceOptions struct {
	endpoint, resourceID, listen string
	port                         int
	cert                         *tls.Certificate // nil: issued by the CA for endpoint
	log                          *slog.Logger
	kind                         string // log label: "rds-postgres", "rds-mysql"
	// The engine's defaults for an empty endpoint (its first label: the
	// rest names the account and region), port and resource id.
	defaultName, defaultResourceID string
	defaultPort                    int
}

// newInstance prepares an instance; serve starts it.
func (a *AWS) newInstance(ca *CA, o instanceOptions) (*instance, error) {
	if o.endpoint == "" {
		o.endpoint = o.defaultName + ".c0ffee123456." + a.Region() + ".rds.amazonaws.com"
	}
	if o.port == 0 {
		o.port = o.defaultPort
	}
	if o.resourceID == "" {
		o.resourceID = o.defaultResourceID
	}
	var cert tls.Certificate
	if o.cert != nil {
		cert = *o.cert
	} else {
		var err error
		if cert, err = ca.ServerCert(o.endpoint); err != nil {
			return nil, fmt.Errorf("emulator: server certificate: %w", err)
		}
	}
	if o.listen == "" {
		o.listen = "127.0.0.1:0"
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := listenTCP(o.listen)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	return &instance{
		aws: a, endpoint: o.endpoint, port: o.port, resourceID: o.resourceID, ln: ln, done: make(chan struct{}),
		tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		log: log.With("emulator", o.kind, "endpoint", o.endpoint),
		db:  a.registerDB(o.kind, o.endpoint, o.port, o.resourceID),
	}, nil
}

// Addr is where the front listens (the dial address for clients).
func (i *instance) Addr() string { return i.ln.Addr().String() }

// Endpoint is the RDS-like endpoint name.
func (i *instance) Endpoint() string { return i.endpoint }

// Port is the endpoint's port (in tokens), not the listening port.
func (i *instance) Port() int { return i.port }

// ResourceID is the instance's DbiResourceId.
func (i *instance) ResourceID() string { return i.resourceID }

// UserARN is the dbuser ARN of user on this instance, for policies: on
// the cluster's resource id once the front is a cluster's (JoinCluster).
func (i *instance) UserARN(user string) string {
	return dbUserARN(i.tokenRegion(), i.aws.AccountID(), i.tokenResourceID(), user)
}

// SetIAMAuth turns IAM database authentication on or off for this
// instance (or its cluster), as modify-db-instance
// --[no-]enable-iam-database-authentication does. Off, the fronts answer
// as RDS does: PostgreSQL falls back to password authentication, MySQL
// says the AWSAuthenticationPlugin is not loaded. DescribeDBInstances and
// DescribeDBClusters report it.
func (i *instance) SetIAMAuth(enabled bool) {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	i.db.iamAuth = enabled
}

// IAMAuthEnabled reports whether IAM database authentication is on.
func (i *instance) IAMAuthEnabled() bool {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	return i.db.iamAuth
}

// JoinCluster makes this front an Aurora cluster endpoint: the RDS API
// lists it under DescribeDBClusters as clusterID, and tokens must be
// allowed on the cluster's resource id (cluster-...), not the instance's.
func (i *instance) JoinCluster(clusterID, clusterResourceID string) {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	i.db.clusterID, i.db.clusterResourceID = clusterID, clusterResourceID
}

// tokenResourceID is the resource id dbuser ARNs name: the cluster's for
// a cluster's front, else the instance's.
func (i *instance) tokenResourceID() string {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	if g := i.db.global; g != nil {
		return g.members[g.primary].ResourceID
	}
	if i.db.clusterResourceID != "" {
		return i.db.clusterResourceID
	}
	return i.resourceID
}

// ConnectPolicy allows rds-db:connect on this instance as each of users.
func (i *instance) ConnectPolicy(users ...string) Policy {
	arns := make([]string, len(users))
	for n, u := range users {
		arns[n] = i.UserARN(u)
	}
	return Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: arns}}}
}

// verifyToken checks a token presented for user as this instance would:
// signed for its own name, or for one of its aliases (an Aurora cluster's
// writer and reader names, which a client dialing through the cluster's
// DNS signs for).
func (i *instance) verifyToken(token, user string) (*Caller, error) {
	if err := i.throttle(); err != nil {
		return nil, err
	}
	return i.aws.VerifyRDSToken(token, TokenTarget{
		Host: i.tokenHost(token), Port: i.port, Region: i.tokenRegion(), DBUser: user, ResourceID: i.tokenResourceID(),
	})
}

// AcceptTokensFor lets tokens signed for names (as well as the instance's
// own endpoint) log in here, as an Aurora instance accepts tokens for the
// cluster endpoints that resolve to it.
func (i *instance) AcceptTokensFor(names ...string) {
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	i.aliases = append(i.aliases, names...)
}

// tokenHost is the name token must have been signed for: the alias it
// names, when it names one, else the instance's own endpoint (so a token
// for any other name fails the host check as before).
func (i *instance) tokenHost(token string) string {
	hostport, _, _ := strings.Cut(token, "?")
	host, _, err := net.SplitHostPort(strings.TrimSuffix(hostport, "/"))
	if err != nil {
		return i.endpoint
	}
	i.aws.mu.Lock()
	defer i.aws.mu.Unlock()
	for _, a := range i.aliases {
		if strings.EqualFold(a, host) {
			return a
		}
	}
	return i.endpoint
}

// Close stops accepting, cuts open connections and waits for their
// handlers to return.
func (i *instance) Close() error {
	i.closeOnce.Do(func() {
		i.aws.unregisterDB(i.db)
		if i.cancel != nil {
			i.cancel()
		}
		i.ln.Close()
		if i.cancel != nil {
			<-i.done
		}
		i.conns.Wait()
	})
	return nil
}
