// Package iamstack starts the whole IAM path on one machine: a throwaway
// PostgreSQL and/or MariaDB, emulated AWS (STS, IMDSv2 with an instance
// profile) and the emulated RDS IAM fronts before them, with the CA file
// the proxy needs. The demo and the integration tests both stand on it, so the demo a
// person runs is the setup the tests prove.
package iamstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Options describe the database and who may connect.
type Options struct {
	// SetupSQL runs in the postgres database, one call per element (so
	// CREATE DATABASE can stand alone), before AppSQL.
	SetupSQL []string
	// AppDB is created, and AppSQL runs in it.
	AppDB  string
	AppSQL string
	// Role is the instance-profile role; it may rds-db:connect as each of
	// AllowUsers, on every instance started.
	Role       string
	AllowUsers []string
	// NoPostgres leaves PostgreSQL out (a MySQL-only stack).
	NoPostgres bool
	// MySQL, when set, also starts a MariaDB behind an emulated RDS for
	// MySQL front.
	MySQL  *MySQLOptions
	Logger *slog.Logger
}

// MySQLOptions describe the MariaDB side.
type MySQLOptions struct {
	// AppDB is created; AppSQL runs in it as root.
	AppDB  string
	AppSQL []string
	// IAMUsers are created in MariaDB with the emulator's backend password
	// and REQUIRE SSL, and are the front's IAM users; the role may
	// rds-db:connect as each. OtherUsers are created the same way but are
	// not IAM users (as if IDENTIFIED BY a password on RDS).
	IAMUsers   []string
	OtherUsers []string
	// Grants run after the users exist, as root.
	Grants []string
}

// Stack is a running IAM path.
type Stack struct {
	PG      *localpg.Server
	My      *localmy.Server
	AWS     *emulator.Server
	Front   *emulator.Postgres
	MyFront *emulator.MySQL
	CAFile  string // the emulator's CA, for --ca-bundle
	Dir     string // scratch dir, removed by Close

	myPassword string // the emulator's password for the MariaDB accounts
	log        *slog.Logger
}

// Start brings everything up, or nothing: on error what started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.AWS, err = emulator.StartServer(emulator.Options{Logger: log}, ""); err != nil {
		return nil, err
	}
	if o.Role == "" {
		return nil, errors.New("iamstack: no role")
	}
	var policy emulator.Policy
	if !o.NoPostgres {
		if err = s.startPostgres(ctx, o, log); err != nil {
			return nil, err
		}
		policy.Statements = append(policy.Statements, s.Front.ConnectPolicy(o.AllowUsers...).Statements...)
	}
	if o.MySQL != nil {
		if err = s.startMySQL(ctx, *o.MySQL, log); err != nil {
			return nil, err
		}
		policy.Statements = append(policy.Statements, s.MyFront.ConnectPolicy(o.AllowUsers...).Statements...)
	}
	s.AWS.AWS.AddRole(o.Role, policy)
	if err = s.AWS.AWS.SetInstanceProfile(o.Role); err != nil {
		return nil, err
	}
	if s.Dir, err = os.MkdirTemp("", "rds-iam-proxy-stack-"); err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(s.Dir, "emulator-ca.pem")
	if err = os.WriteFile(s.CAFile, s.AWS.CA.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) startPostgres(ctx context.Context, o Options, log *slog.Logger) (err error) {
	if s.PG, err = localpg.Start(ctx, localpg.Options{}); err != nil {
		return err
	}
	for _, sql := range o.SetupSQL {
		if err = s.PG.Exec(ctx, sql); err != nil {
			return fmt.Errorf("set up the database: %w", err)
		}
	}
	if o.AppDB != "" {
		if err = s.PG.Exec(ctx, "CREATE DATABASE "+o.AppDB); err != nil {
			return fmt.Errorf("create database %s: %w", o.AppDB, err)
		}
		if err = s.PG.ExecIn(ctx, o.AppDB, o.AppSQL); err != nil {
			return fmt.Errorf("set up database %s: %w", o.AppDB, err)
		}
	}
	s.Front, err = s.AWS.AWS.StartPostgres(s.AWS.CA, emulator.PostgresOptions{Backend: s.PG.Addr(), Logger: log})
	return err
}

// backendHost is the name the MariaDB certificate carries; the emulator
// verifies it on its hop to MariaDB.
const backendHost = "mariadb.backend.invalid"

func (s *Stack) startMySQL(ctx context.Context, o MySQLOptions, log *slog.Logger) (err error) {
	certPEM, keyPEM, err := s.AWS.CA.ServerCertPEM(backendHost)
	if err != nil {
		return fmt.Errorf("MariaDB certificate: %w", err)
	}
	if s.My, err = localmy.Start(ctx, localmy.Options{
		TLS: &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		// Connection attributes are visible only with performance_schema;
		// tests check that the client's reach the server.
		Settings: map[string]string{"performance_schema": "ON"},
	}); err != nil {
		return err
	}
	password, err := randomPassword()
	if err != nil {
		return err
	}
	stmts := []string{}
	if o.AppDB != "" {
		stmts = append(stmts, "CREATE DATABASE "+o.AppDB)
	}
	for _, u := range append(append([]string(nil), o.IAMUsers...), o.OtherUsers...) {
		stmts = append(stmts, iamtest.MySQLUserSQL(u, password, true))
	}
	stmts = append(stmts, o.Grants...)
	if err = s.My.Exec(ctx, stmts...); err != nil {
		return fmt.Errorf("set up MariaDB: %w", err)
	}
	if o.AppDB != "" && len(o.AppSQL) > 0 {
		if err = s.My.ExecIn(ctx, o.AppDB, o.AppSQL...); err != nil {
			return fmt.Errorf("set up database %s: %w", o.AppDB, err)
		}
	}
	s.myPassword, s.log = password, log
	s.MyFront, err = s.StartMySQLFront(emulator.MySQLOptions{IAMUsers: o.IAMUsers})
	return err
}

// StartMySQLFront starts another emulated RDS for MySQL front before the
// stack's MariaDB (another shape of greeting, say), logging in to it as
// the first front does. The caller closes it.
func (s *Stack) StartMySQLFront(o emulator.MySQLOptions) (*emulator.MySQL, error) {
	o.Backend, o.BackendPassword = s.My.Addr(), s.myPassword
	o.BackendTLS = &tls.Config{RootCAs: s.AWS.CA.Pool(), ServerName: backendHost, MinVersion: tls.VersionTLS12}
	if o.Logger == nil {
		o.Logger = s.log
	}
	return s.AWS.AWS.StartMySQL(s.AWS.CA, o)
}

// randomPassword is the emulator's password for the backend accounts: the
// only way in is through the front, with a token.
func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("backend password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// MySQLEndpoint is the RDS-like MySQL endpoint, host:port, for --endpoint.
func (s *Stack) MySQLEndpoint() string {
	return fmt.Sprintf("%s:%d", s.MyFront.Endpoint(), s.MyFront.Port())
}

// Endpoint is the RDS-like endpoint, host:port, for --endpoint.
func (s *Stack) Endpoint() string { return fmt.Sprintf("%s:%d", s.Front.Endpoint(), s.Front.Port()) }

// UseInProcess points this process's AWS chain at the emulator only (see
// emulator.Server.IsolateProcessEnv).
func (s *Stack) UseInProcess() { s.AWS.IsolateProcessEnv(s.Dir) }

// Close stops everything that started. Safe on a partly started stack.
func (s *Stack) Close() {
	if s.Front != nil {
		s.Front.Close()
	}
	if s.MyFront != nil {
		s.MyFront.Close()
	}
	if s.My != nil {
		s.My.Stop()
	}
	if s.AWS != nil {
		s.AWS.Close()
	}
	if s.PG != nil {
		s.PG.Stop()
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
	}
}

// Signer adds an IAM user (name) that may rds-db:connect as users on every
// front the stack started, and returns AWS load options that sign as that
// user (whatever the chain would find) in the region of the emulated DBs,
// against the emulator's APIs, with no shared config files. Unlike UseInProcess it changes nothing in the
// process environment, so tests that use it may run beside others.
func (s *Stack) Signer(name string, users ...string) []func(*config.LoadOptions) error {
	var policy emulator.Policy
	if s.Front != nil {
		policy.Statements = append(policy.Statements, s.Front.ConnectPolicy(users...).Statements...)
	}
	if s.MyFront != nil {
		policy.Statements = append(policy.Statements, s.MyFront.ConnectPolicy(users...).Statements...)
	}
	akid, secret := s.AWS.AWS.AddUser(name, policy)
	none := filepath.Join(s.Dir, "no-aws-config")
	return []func(*config.LoadOptions) error{
		config.WithRegion(s.AWS.AWS.Region()),
		config.WithBaseEndpoint(s.AWS.URL()), // STS, and the RDS and IAM APIs doctor asks
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")),
		config.WithSharedConfigFiles([]string{none}),
		config.WithSharedCredentialsFiles([]string{none}),
	}
}
