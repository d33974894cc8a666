// Package targets starts what a connection storm runs against: a
// PostgreSQL and a MariaDB with TLS and room for the storm, each reachable
// two ways. Through an emulated RDS IAM front (on a given emulated AWS), as
// the proxy reaches RDS; and directly over TLS as a password user, which is
// what a storm through the proxy is compared with, in the same run.
//
// The integration tests' shared servers allow 200 connections; a storm of
// 300 or 1,000 clients needs servers of its own. The fronts keep the
// emulator's default resource ids, so a policy that lets a role connect to
// the default emulated instances (iamstack's) also lets it connect here.
package targets

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Who and where storms log in.
const (
	// IAMUser is the database user the proxy logs in as with a token (in
	// rds_iam on PostgreSQL; an IAM user of the MySQL front).
	IAMUser = "app_user"
	// DirectUser logs in directly with a password, over TLS only.
	DirectUser = "storm_direct"
	// Database exists on both servers; both users may use it.
	Database = "stormdb"
)

// Options say what to start.
type Options struct {
	// AWS is the emulated AWS whose CA signs every certificate and whose
	// fronts check the proxy's tokens.
	AWS *emulator.Server
	// Clients is the most clients a storm runs at once. Each server allows
	// twice as many connections plus a margin: a round's server sessions
	// may still be ending when the next round starts.
	Clients int
	// NoPostgres and NoMySQL leave one server out.
	NoPostgres, NoMySQL bool
	Logger              *slog.Logger
}

// Set is a running pair of storm targets. Close stops it.
type Set struct {
	PG      *localpg.Server
	My      *localmy.Server
	PGFront *emulator.Postgres
	MyFront *emulator.MySQL
	// CAFile holds the emulator's CA: --ca-bundle for the proxy, and the
	// CA direct clients verify the servers with.
	CAFile string

	dir      string
	password string // DirectUser's, on both servers
}

// Start starts the servers and fronts, or nothing: on error what started
// is stopped.
func Start(ctx context.Context, o Options) (_ *Set, err error) {
	if o.AWS == nil {
		return nil, errors.New("targets: no emulated AWS")
	}
	if o.Clients <= 0 {
		o.Clients = 100
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "rds-iam-proxy-storm-"); err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	if err = os.WriteFile(s.CAFile, o.AWS.CA.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	pw := make([]byte, 16)
	rand.Read(pw) // crypto/rand.Read never fails (Go 1.24+)
	s.password = hex.EncodeToString(pw)
	room := strconv.Itoa(2*o.Clients + 50)
	if !o.NoPostgres {
		if err = s.startPostgres(ctx, o, room); err != nil {
			return nil, err
		}
	}
	if !o.NoMySQL {
		if err = s.startMySQL(ctx, o, room); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// serverNames are the names in both servers' certificates: direct clients
// dial 127.0.0.1 and verify it.
var serverNames = []string{"127.0.0.1", "localhost"}

func (s *Set) startPostgres(ctx context.Context, o Options, room string) (err error) {
	certPEM, keyPEM, err := o.AWS.CA.ServerCertPEM(serverNames...)
	if err != nil {
		return err
	}
	if s.PG, err = localpg.Start(ctx, localpg.Options{
		TLS: &localpg.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		HBA: []string{
			"local all all trust",
			// Direct logins: a cleartext password over TLS, the way RDS
			// takes an IAM token, so the two paths differ by the proxy
			// (and the emulator's hop), not by the auth method.
			"hostssl all " + DirectUser + " 127.0.0.1/32 password",
			"hostnossl all " + DirectUser + " 127.0.0.1/32 reject",
			// The front's hop, as the integration world has it.
			"host all all 127.0.0.1/32 trust",
		},
		Settings: map[string]string{"max_connections": room},
	}); err != nil {
		return fmt.Errorf("targets: PostgreSQL: %w", err)
	}
	for _, sql := range []string{
		"CREATE ROLE rds_iam",
		"CREATE ROLE " + IAMUser + " LOGIN IN ROLE rds_iam",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", DirectUser, s.password),
		"CREATE DATABASE " + Database,
	} {
		if err = s.PG.Exec(ctx, sql); err != nil {
			return fmt.Errorf("targets: set up PostgreSQL: %w", err)
		}
	}
	s.PGFront, err = o.AWS.AWS.StartPostgres(o.AWS.CA, emulator.PostgresOptions{
		Endpoint: "storm-pg.c0ffee123456." + o.AWS.AWS.Region() + ".rds.amazonaws.com",
		Backend:  s.PG.Addr(), Logger: o.Logger.With("component", "storm-pg-front"),
	})
	return err
}

func (s *Set) startMySQL(ctx context.Context, o Options, room string) (err error) {
	certPEM, keyPEM, err := o.AWS.CA.ServerCertPEM(serverNames...)
	if err != nil {
		return err
	}
	if s.My, err = localmy.Start(ctx, localmy.Options{
		TLS: &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		Settings: map[string]string{
			"max_connections": room,
			// A storm's abandoned connects must not get 127.0.0.1
			// blocked (ERROR 1129) for everyone.
			"max_connect_errors": "1000000",
			// The front dials MariaDB before the proxy has finished its
			// login to the front; on a loaded machine that takes longer
			// than the default 10 s, and MariaDB would drop the front's
			// connection: a storm would then measure MariaDB's patience.
			"connect_timeout": "120",
			// Room in the listen queue for the whole storm at once.
			"back_log": room,
		},
	}); err != nil {
		return fmt.Errorf("targets: MariaDB: %w", err)
	}
	// Only the front knows the IAM user's password: the way in for that
	// user is a token, through the front.
	backendPW := make([]byte, 16)
	rand.Read(backendPW)
	backend := hex.EncodeToString(backendPW)
	if err = s.My.Exec(ctx,
		"CREATE DATABASE "+Database,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL", IAMUser, backend),
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL", DirectUser, s.password),
		fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", Database, IAMUser),
		fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", Database, DirectUser),
	); err != nil {
		return fmt.Errorf("targets: set up MariaDB: %w", err)
	}
	s.MyFront, err = o.AWS.AWS.StartMySQL(o.AWS.CA, emulator.MySQLOptions{
		Endpoint: "storm-mysql.c0ffee123456." + o.AWS.AWS.Region() + ".rds.amazonaws.com",
		Backend:  s.My.Addr(), BackendPassword: backend, IAMUsers: []string{IAMUser},
		BackendTLS: &tls.Config{RootCAs: o.AWS.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12},
		Logger:     o.Logger.With("component", "storm-mysql-front"),
	})
	return err
}

// PGEndpoint is the Postgres front's endpoint, host:port, for the proxy's
// endpoint setting (its dial address is PGFront.Addr()).
func (s *Set) PGEndpoint() string {
	return fmt.Sprintf("%s:%d", s.PGFront.Endpoint(), s.PGFront.Port())
}

// MyEndpoint is PGEndpoint for the MySQL front.
func (s *Set) MyEndpoint() string {
	return fmt.Sprintf("%s:%d", s.MyFront.Endpoint(), s.MyFront.Port())
}

// ConnectPolicy lets a principal connect through both fronts as IAMUser.
func (s *Set) ConnectPolicy() emulator.Policy {
	var p emulator.Policy
	if s.PGFront != nil {
		p.Statements = append(p.Statements, s.PGFront.ConnectPolicy(IAMUser).Statements...)
	}
	if s.MyFront != nil {
		p.Statements = append(p.Statements, s.MyFront.ConnectPolicy(IAMUser).Statements...)
	}
	return p
}

// Direct is the target for engine ("postgres" or "mysql") without the
// proxy: the server itself over verified TLS, as DirectUser.
func (s *Set) Direct(engine string) loadgen.Target {
	t := loadgen.Target{Name: "direct", Host: "127.0.0.1", User: DirectUser, Password: s.password,
		Database: Database, CAFile: s.CAFile}
	if engine == "mysql" {
		t.Port = s.My.Port
	} else {
		t.Port = s.PG.Port
	}
	return t
}

// ProxyConfig is the proxy's YAML configuration for this set: a Postgres
// upstream listening on pgListen and a MySQL one on myListen (each left out
// when its server is), with top-level settings (YAML lines) first. It
// trusts CAFile unless a top line sets a ca_bundle_url.
func (s *Set) ProxyConfig(pgListen, myListen string, top ...string) string {
	var b strings.Builder
	ownCA := false
	for _, line := range top {
		fmt.Fprintln(&b, line)
		ownCA = ownCA || strings.HasPrefix(strings.TrimSpace(line), "ca_bundle")
	}
	if !ownCA {
		fmt.Fprintf(&b, "ca_bundle: %s\n", s.CAFile)
	}
	b.WriteString("upstreams:\n")
	if s.PGFront != nil {
		fmt.Fprintf(&b, "  - name: storm-pg\n    engine: postgres\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
			s.PGEndpoint(), s.PGFront.Addr(), pgListen)
	}
	if s.MyFront != nil {
		fmt.Fprintf(&b, "  - name: storm-mysql\n    engine: mysql\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
			s.MyEndpoint(), s.MyFront.Addr(), myListen)
	}
	return b.String()
}

// Proxy is the target for a proxy listening on 127.0.0.1:port in front of
// this set: plaintext on loopback, as IAMUser, no password.
func Proxy(port int) loadgen.Target {
	return loadgen.Target{Name: "proxy", Host: "127.0.0.1", Port: port, User: IAMUser, Database: Database}
}

// Close stops everything that started. Safe on a partly started set.
func (s *Set) Close() {
	if s.PGFront != nil {
		s.PGFront.Close()
	}
	if s.MyFront != nil {
		s.MyFront.Close()
	}
	if s.PG != nil {
		s.PG.Stop()
	}
	if s.My != nil {
		s.My.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
