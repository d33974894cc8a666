package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// cmdEmulate serves emulated AWS (STS, IMDSv2) and an RDS IAM front for a
// real PostgreSQL or MySQL/MariaDB server, for trying the proxy or testing
// an application's IAM path without AWS.
func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("emulate", "rds-iam-proxy emulate [--engine mysql] --backend HOST:PORT [flags]\n\nServes emulated STS and IMDSv2 and an RDS IAM front in front of a real PostgreSQL\nor MySQL/MariaDB server. The emulator logs in to the backend as the client's user.\nPostgreSQL: without a password (pg_hba \"host all all 127.0.0.1/32 trust\") or with\n--backend-password; IAM users must be members of rds_iam, as on RDS.\nMySQL: with --backend-password (mysql_native_password, or caching_sha2_password);\nthe --db-users are the IAM users, since MySQL has no AWSAuthenticationPlugin.", stderr)
	var lf logFlags
	lf.register(fs)
	engineName := fs.String("engine", "postgres", config.Usage("engine"))
	backend := fs.String("backend", "", "HOST:PORT of the real database server")
	backendPassword := fs.String("backend-password", "", "password the emulator uses to log in to the backend (default: none, trust)")
	listenAWS := fs.String("listen-aws", "127.0.0.1:0", "address for emulated STS and IMDS")
	listenPG := fs.String("listen-postgres", "127.0.0.1:0", "address for the emulated RDS for PostgreSQL front")
	listenMy := fs.String("listen-mysql", "127.0.0.1:0", "address for the emulated RDS for MySQL front")
	endpoint := fs.String("endpoint-name", "", "RDS-like endpoint name of the front (default emulated-pg.c0ffee123456.REGION.rds.amazonaws.com, or emulated-mysql...)")
	region := fs.String("region", "us-east-1", "the emulated region")
	dbUsers := fs.String("db-users", "*", "comma-separated database users the instance-profile role may rds-db:connect as (* = any); for mysql also the IAM users")
	caOut := fs.String("ca-out", "emulator-ca.pem", "where to write the emulator's CA certificate (the proxy's --ca-bundle)")
	advertise := fs.String("advertise-host", "", "host name other machines or containers reach the emulator by: the printed and --env-out URLs and dial addresses use it instead of the listening address (e.g. \"emulator\" in docker compose)")
	envOut := fs.String("env-out", "", "also write the AWS_* variables to this file as KEY=value lines (an env file for docker --env-file, systemd EnvironmentFile or `set -a; . FILE`)")
	myBackend := fs.String("mysql-backend", "", "with --engine postgres: also serve an RDS for MySQL front (on --listen-mysql) for this HOST:PORT in the same emulated AWS, so one proxy can reach both with the same credentials")
	myPassword := fs.String("mysql-backend-password", "", "the password for --mysql-backend (as --backend-password is for --backend)")
	var newUser emulateUser
	newUser.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	fail := commandFailure("emulate", 1, stderr)
	if *backend == "" {
		return fail(fmt.Errorf("--backend HOST:PORT is required"))
	}
	engine, err := config.ParseEngine(*engineName)
	if err != nil {
		return fail(fmt.Errorf("--engine %w", err))
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return fail(err)
	}
	password, created, err := newUser.start(ctx, engine, *backend, *backendPassword)
	if err != nil {
		return fail(err)
	}
	var backendTLS *tls.Config
	if created != nil {
		defer dropEmulatedUser(created, stderr)
		backendTLS = created.BackendTLS
		if *dbUsers == "*" {
			*dbUsers = created.Name
		}
	}
	srv, err := emulator.StartServer(emulator.Options{Region: *region, Logger: log}, *listenAWS)
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	var users []string
	for _, u := range strings.Split(*dbUsers, ",") {
		if u = strings.TrimSpace(u); u != "" {
			users = append(users, u)
		}
	}
	if *myBackend != "" && engine != config.Postgres {
		return fail(fmt.Errorf("--mysql-backend adds a MySQL front beside --engine postgres; with --engine mysql use --backend"))
	}
	front, err := startFront(srv, engine, *backend, password, backendTLS, *listenPG, *listenMy, *endpoint, users, log)
	if err != nil {
		return fail(err)
	}
	defer front.Close()
	fronts := []frontRun{{front, engine}}
	if *myBackend != "" {
		my, err := startFront(srv, config.MySQL, *myBackend, *myPassword, nil, *listenPG, *listenMy, "", users, log)
		if err != nil {
			return fail(fmt.Errorf("--mysql-backend: %w", err))
		}
		defer my.Close()
		fronts = append(fronts, frontRun{my, config.MySQL})
	}

	var resources []string
	var policy emulator.Policy
	for _, f := range fronts {
		for _, u := range users {
			resources = append(resources, f.UserARN(u))
		}
		policy.Statements = append(policy.Statements, f.ConnectPolicy(users...).Statements...)
	}
	roleARN := srv.AWS.AddRole("emulated-app", policy)
	if err := srv.AWS.SetInstanceProfile("emulated-app"); err != nil {
		return fail(err)
	}
	akid, secret := srv.AWS.AddUser("emulated-developer", policy)
	if err := os.WriteFile(*caOut, srv.CA.CertPEM(), 0o644); err != nil {
		return fail(err)
	}

	env := srv.SDKEnv()
	awsURL := advertised(srv.URL(), *advertise)
	for k, v := range env {
		env[k] = strings.Replace(v, srv.URL(), awsURL, 1)
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	if *envOut != "" {
		var b strings.Builder
		for _, k := range names {
			fmt.Fprintf(&b, "%s=%s\n", k, env[k])
		}
		if err := os.WriteFile(*envOut, []byte(b.String()), 0o644); err != nil {
			return fail(err)
		}
	}
	for _, f := range fronts {
		fmt.Fprintf(stdout, "# emulated AWS at %s; RDS front for %s:%d at %s\n", awsURL, f.Endpoint(), f.Port(), advertised(f.Addr(), *advertise))
	}
	fmt.Fprintf(stdout, "# instance profile role %s may rds-db:connect on %s\n", roleARN, strings.Join(resources, ", "))
	fmt.Fprintln(stdout, "# point AWS SDKs at the emulator (instance profile credentials over IMDSv2):")
	for _, k := range names {
		fmt.Fprintf(stdout, "export %s=%s\n", k, env[k])
	}
	fmt.Fprintf(stdout, "# or use the IAM user emulated-developer's keys instead:\n#   export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\n", akid, secret)
	for _, f := range fronts {
		fmt.Fprintf(stdout, "rds-iam-proxy --engine %s --endpoint %s:%d --dial-address %s --ca-bundle %s\n", f.engine, f.Endpoint(), f.Port(), advertised(f.Addr(), *advertise), *caOut)
	}
	<-ctx.Done()
	return 0
}

// frontRun is a started front and its engine.
type frontRun struct {
	front
	engine config.Engine
}

// advertised replaces the host of addr (HOST:PORT, or http://HOST:PORT) with
// host, keeping the port; host "" leaves addr as it is.
func advertised(addr, host string) string {
	if host == "" {
		return addr
	}
	scheme, hostPort, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, hostPort = "", addr
	}
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return addr
	}
	if scheme != "" {
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	return net.JoinHostPort(host, port)
}

// front is what emulate needs of either engine's RDS front.
type front interface {
	Endpoint() string
	Port() int
	Addr() string
	UserARN(user string) string
	ConnectPolicy(users ...string) emulator.Policy
	Close() error
}

func startFront(srv *emulator.Server, engine config.Engine, backend, password string, backendTLS *tls.Config, listenPG, listenMy, endpoint string, users []string, log *slog.Logger) (front, error) {
	if engine == config.MySQL {
		if password == "" {
			return nil, fmt.Errorf("--backend-password is required for mysql: the emulator logs in to the backend as each IAM user with it")
		}
		return srv.AWS.StartMySQL(srv.CA, emulator.MySQLOptions{
			Backend: backend, BackendPassword: password, BackendTLS: backendTLS, Listen: listenMy, Endpoint: endpoint, IAMUsers: users, Logger: log})
	}
	return srv.AWS.StartPostgres(srv.CA, emulator.PostgresOptions{
		Backend: backend, BackendPassword: password, Listen: listenPG, Endpoint: endpoint, Logger: log})
}
