package iamtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// Engines Options.Engine names.
const (
	Postgres = "postgres"
	MySQL    = "mysql" // MySQL and MariaDB
)

// Options name the server and the IAM user to create on it.
type Options struct {
	// Engine is Postgres (default) or MySQL (also MariaDB).
	Engine string
	// Addr is the server's HOST:PORT, as this process reaches it.
	Addr string
	// AdminUser and AdminPassword log in to create and drop the IAM user
	// (default user: postgres, or root for MySQL). The admin login uses
	// TLS when the server offers it, without verifying it: the server is
	// the test's own.
	AdminUser, AdminPassword string
	// Database is where the admin logs in and the Grants run (default:
	// postgres for PostgreSQL, none for MySQL). It must exist.
	Database string
	// DBUser is the IAM user to create; default "iam_user". It must not
	// exist yet.
	DBUser string
	// Grants run as the admin in Database after the user is created
	// ("GRANT SELECT ON t TO iam_user", "GRANT ALL ON app.* TO
	// 'iam_user'@'%'").
	Grants []string
	// Region is the emulated region; default us-east-1.
	Region string
	// BackendTLS is how the MySQL front reaches the server over TLS. nil:
	// TLS without verifying the server when it offers TLS (the user is
	// then created REQUIRE SSL, as an RDS IAM user logs in over TLS only),
	// plaintext when it does not. PostgreSQL's front logs in in plaintext.
	BackendTLS *tls.Config
	// Logger receives the emulator's log: why a token was refused is
	// there (the client hears only "PAM authentication failed"). nil: none.
	Logger *slog.Logger
}

// Env is a running emulated RDS IAM path before the server.
type Env struct {
	// Engine is Postgres or MySQL.
	Engine string
	// Endpoint is the RDS-like endpoint name: tokens are signed for it and
	// TLS verifies it. Port is the endpoint's port (5432 or 3306; tokens
	// are signed for it), not the port the front listens on.
	Endpoint string
	Port     int
	// DialAddress is where the front listens (HOST:PORT): connect there,
	// as through a tunnel (the proxy's --dial-address).
	DialAddress string
	// CAFile holds CAPEM, the CA that signed the front's certificate (the
	// proxy's --ca-bundle); it is removed by Close.
	CAFile string
	CAPEM  []byte
	// DBUser is the IAM user, Database the database of Options.
	DBUser, Database string
	// AWSEnv points AWS SDKs and the AWS CLI at the emulator, with keys of
	// an IAM user that may rds-db:connect as DBUser (an instance profile
	// role over IMDS may as well). Setenv sets it for a test; give it to a
	// child process's environment otherwise.
	AWSEnv map[string]string
	// AWS is the emulator itself, for tests that go further (faults,
	// more users and roles).
	AWS *emulator.Server

	front interface{ Close() error }
	user  *User
	dir   string
}

// EndpointAddr is Endpoint:Port, the proxy's --endpoint.
func (e *Env) EndpointAddr() string { return net.JoinHostPort(e.Endpoint, fmt.Sprint(e.Port)) }

// Start is StartContext for a test: it fails the test when the path
// cannot be set up, and its cleanup drops the user and stops the
// emulator.
func Start(tb testing.TB, o Options) *Env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := StartContext(ctx, o)
	if err != nil {
		tb.Fatalf("iamtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("iamtest: %v", err)
		}
	})
	return e
}

// StartContext creates the IAM user and starts emulated AWS and the RDS
// IAM front before the server; Close undoes it. On error nothing is left
// behind.
func StartContext(ctx context.Context, o Options) (_ *Env, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	e := &Env{Engine: o.Engine, DBUser: o.DBUser, Database: o.Database}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.user, err = CreateUser(ctx, o, password); err != nil {
		return nil, err
	}
	if e.AWS, err = emulator.StartServer(emulator.Options{Region: o.Region, Logger: o.Logger}, ""); err != nil {
		return nil, err
	}
	var policy emulator.Policy
	if o.Engine == MySQL {
		front, err := e.AWS.AWS.StartMySQL(e.AWS.CA, emulator.MySQLOptions{Backend: o.Addr, BackendPassword: password,
			BackendTLS: e.user.BackendTLS, IAMUsers: []string{o.DBUser}, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		e.front, e.Endpoint, e.Port, e.DialAddress = front, front.Endpoint(), front.Port(), front.Addr()
		policy = front.ConnectPolicy(o.DBUser)
	} else {
		front, err := e.AWS.AWS.StartPostgres(e.AWS.CA, emulator.PostgresOptions{Backend: o.Addr, BackendPassword: password, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		e.front, e.Endpoint, e.Port, e.DialAddress = front, front.Endpoint(), front.Port(), front.Addr()
		policy = front.ConnectPolicy(o.DBUser)
	}
	e.AWS.AWS.AddRole("iamtest-app", policy)
	if err = e.AWS.AWS.SetInstanceProfile("iamtest-app"); err != nil {
		return nil, err
	}
	akid, secret := e.AWS.AWS.AddUser("iamtest-developer", policy)
	if e.dir, err = os.MkdirTemp("", "iamtest-"); err != nil {
		return nil, err
	}
	e.CAPEM = e.AWS.CA.CertPEM()
	e.CAFile = filepath.Join(e.dir, "emulator-ca.pem")
	if err = os.WriteFile(e.CAFile, e.CAPEM, 0o644); err != nil {
		return nil, err
	}
	e.AWSEnv = e.AWS.SDKEnv()
	e.AWSEnv["AWS_ACCESS_KEY_ID"], e.AWSEnv["AWS_SECRET_ACCESS_KEY"] = akid, secret
	// Missing files: a developer's own profiles and keys stay out.
	e.AWSEnv["AWS_CONFIG_FILE"] = filepath.Join(e.dir, "no-aws-config")
	e.AWSEnv["AWS_SHARED_CREDENTIALS_FILE"] = filepath.Join(e.dir, "no-aws-credentials")
	return e, nil
}

func (o Options) withDefaults() (Options, error) {
	switch o.Engine {
	case "", Postgres:
		o.Engine = Postgres
		if o.AdminUser == "" {
			o.AdminUser = "postgres"
		}
		if o.Database == "" {
			o.Database = "postgres"
		}
	case MySQL, "mariadb":
		o.Engine = MySQL
		if o.AdminUser == "" {
			o.AdminUser = "root"
		}
	default:
		return o, fmt.Errorf("iamtest: engine %q: use %q or %q", o.Engine, Postgres, MySQL)
	}
	if o.Addr == "" {
		return o, errors.New("iamtest: Options.Addr (the server's HOST:PORT) is required")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return o, fmt.Errorf("iamtest: Options.Addr %q: %w", o.Addr, err)
	}
	if o.DBUser == "" {
		o.DBUser = "iam_user"
	}
	return o, nil
}

// Setenv sets AWSEnv for the test and unsets every other AWS_* variable
// (a runner's own keys or profile would win over the emulator's); the
// test's cleanup restores them all.
func (e *Env) Setenv(tb testing.TB) {
	tb.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := e.AWSEnv[name]; strings.HasPrefix(name, "AWS_") && !ours {
			tb.Setenv(name, "") // registers the restore
			os.Unsetenv(name)
		}
	}
	for k, v := range e.AWSEnv {
		tb.Setenv(k, v)
	}
}

// Close drops the IAM user (and rds_iam when Start created it and no one
// else is in it) and stops the front and the emulator. Safe on a partly
// started Env.
func (e *Env) Close() error {
	var errs []error
	if e.front != nil {
		e.front.Close()
	}
	if e.AWS != nil {
		e.AWS.Close()
	}
	if e.user != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.user.Drop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
	return errors.Join(errs...)
}

// randomPassword is the front's password for the IAM user on the server:
// no one else knows it, so the only way in is through the front.
func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("iamtest: backend password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
