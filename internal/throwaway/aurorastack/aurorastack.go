// Package aurorastack starts an emulated Aurora PostgreSQL or Aurora MySQL
// cluster on one machine for the integration tests and the failover bench:
// a PostgreSQL (localpg) or MariaDB (localmy) server per instance, an AWS
// emulator of its own with the cluster's fronts
// (emulator.StartAuroraPostgres, StartAuroraMySQL), an IAM user allowed to
// connect, and the proxy configuration that reaches the cluster through
// its stale-DNS forwarder with the instances' dial addresses.
package aurorastack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Options say what to start.
type Options struct {
	Engine       string        // "postgres" (default) or "mysql" (MariaDB servers, Aurora MySQL fronts)
	Instances    []string      // server ids, the first the writer; default alpha, beta, gamma
	User         string        // the IAM database user (in rds_iam; mysql: an IAM user of the fronts); default app_user
	Database     string        // the app database, with a table hits (id, client) the user may INSERT into; default appdb
	StaleDNS     time.Duration // emulator.AuroraOptions.StaleDNS
	RestartDelay time.Duration // emulator.AuroraOptions.RestartDelay; default 500 ms
}

// Stack is a running cluster.
type Stack struct {
	Cluster                *emulator.Cluster
	AWS                    *emulator.Server
	CAFile                 string
	Signer                 []func(*awsconfig.LoadOptions) error // the proxy's AWS settings: the IAM user's keys
	AccessKeyID, SecretKey string
	User, Database         string
	Engine                 config.Engine
	PG                     []*localpg.Server // postgres: the instances' servers, in Options.Instances' order
	MySQL                  []*localmy.Server // mysql: the same
	dir                    string
}

// Start starts the servers (in parallel), the emulator and the cluster.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	if len(o.Instances) == 0 {
		o.Instances = []string{"alpha", "beta", "gamma"}
	}
	if o.User == "" {
		o.User = "app_user"
	}
	if o.Database == "" {
		o.Database = "appdb"
	}
	if o.RestartDelay == 0 {
		o.RestartDelay = 500 * time.Millisecond
	}
	s = &Stack{User: o.User, Database: o.Database, Engine: config.Postgres}
	switch o.Engine {
	case "", "postgres":
	case "mysql":
		s.Engine = config.MySQL
	default:
		return nil, fmt.Errorf("aurorastack: engine %q: use postgres or mysql", o.Engine)
	}
	// A failed start returns a nil Stack: what it started is stopped
	// through started, not the (by then nil) result.
	started := s
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "aurorastack-"); err != nil {
		return nil, err
	}
	if s.Engine == config.MySQL {
		err = s.startMySQL(ctx, o)
	} else {
		err = s.startPostgres(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(s.dir, "aurora-ca.pem")
	if err := os.WriteFile(s.CAFile, s.AWS.CA.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	s.AccessKeyID, s.SecretKey = s.AWS.AWS.AddUser("aurora-proxy", s.Cluster.ConnectPolicy(o.User))
	none := filepath.Join(s.dir, "no-aws-config")
	s.Signer = []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithBaseEndpoint(s.AWS.URL()),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretKey, "")),
		awsconfig.WithSharedConfigFiles([]string{none}),
		awsconfig.WithSharedCredentialsFiles([]string{none}),
	}
	return s, nil
}

// startPostgres starts the PostgreSQL servers, the emulator and the
// Aurora PostgreSQL cluster.
func (s *Stack) startPostgres(ctx context.Context, o Options) (err error) {
	s.PG = make([]*localpg.Server, len(o.Instances))
	errs := make([]error, len(o.Instances))
	var wg sync.WaitGroup
	for n := range o.Instances {
		wg.Go(func() {
			pg, err := localpg.Start(ctx, localpg.Options{Settings: map[string]string{"max_connections": "300"}})
			s.PG[n], errs[n] = pg, err
			if err == nil {
				errs[n] = setUp(ctx, pg, o.User, o.Database)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if s.AWS, err = emulator.StartServer(emulator.Options{Region: "us-east-1", AccountID: "123456789012"}, ""); err != nil {
		return err
	}
	var instances []emulator.AuroraInstance
	for n, id := range o.Instances {
		host, port, _ := net.SplitHostPort(s.PG[n].Addr())
		instances = append(instances, emulator.AuroraInstance{ID: id, Backend: s.PG[n].Addr(),
			Admin: fmt.Sprintf("host=%s port=%s user=postgres sslmode=disable", host, port)})
	}
	s.Cluster, err = s.AWS.AWS.StartAuroraPostgres(ctx, s.AWS.CA, emulator.AuroraOptions{Instances: instances,
		Databases: []string{"postgres", o.Database}, StaleDNS: o.StaleDNS, RestartDelay: o.RestartDelay})
	return err
}

func setUp(ctx context.Context, pg *localpg.Server, user, db string) error {
	if err := pg.Exec(ctx, "CREATE ROLE rds_iam; CREATE ROLE "+user+" LOGIN IN ROLE rds_iam"); err != nil {
		return err
	}
	if err := pg.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return err
	}
	return pg.ExecIn(ctx, db, "CREATE TABLE hits (id serial PRIMARY KEY, client text); GRANT INSERT, SELECT ON hits TO "+user+
		"; GRANT USAGE ON SEQUENCE hits_id_seq TO "+user)
}

// ProxyConfig is the proxy's configuration for the cluster's writer
// endpoint, dialed through the stale-DNS forwarder, with every instance's
// dial address; its engine is the stack's (config.Postgres or
// config.MySQL).
func (s *Stack) ProxyConfig() launch.Config {
	c := launch.NewConfig(s.Engine, fmt.Sprintf("%s:%d", s.Cluster.WriterName(), s.Cluster.Port()))
	c.DialAddress, c.Listen, c.CABundle, c.AWSLoadOptions = s.Cluster.ClusterAddr(), "127.0.0.1:0", s.CAFile, s.Signer
	var pairs []string
	for name, addr := range s.Cluster.InstanceAddrs() {
		pairs = append(pairs, name+"="+addr)
	}
	slices.Sort(pairs)
	c.InstanceDialAddresses = strings.Join(pairs, " ")
	return c
}

// Close stops everything started.
func (s *Stack) Close() {
	if s.Cluster != nil {
		s.Cluster.Close()
	}
	if s.AWS != nil {
		s.AWS.Close()
	}
	for _, pg := range s.PG {
		if pg != nil {
			pg.Stop()
		}
	}
	for _, my := range s.MySQL {
		if my != nil {
			my.Stop()
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
