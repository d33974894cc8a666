package cihelper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
)

// TestIAMLogin logs in with an IAM token, the way the application does in
// production, to the PostgreSQL named by PGHOST, PGPORT, PGUSER and
// PGPASSWORD (a CI service container), behind the emulated RDS IAM front.
func TestIAMLogin(t *testing.T) {
	addr := net.JoinHostPort(getenv("PGHOST", "127.0.0.1"), getenv("PGPORT", "5432"))
	env := iamtest.Start(t, iamtest.Options{Addr: addr, AdminUser: getenv("PGUSER", "postgres"), AdminPassword: os.Getenv("PGPASSWORD"),
		DBUser: "app_iam", Grants: []string{"GRANT pg_read_all_data TO app_iam"}})
	env.Setenv(t) // AWS_* now point at the emulator, with keys that may rds-db:connect as app_iam
	for _, name := range []string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD"} {
		t.Setenv(name, "") // the app's login below must not borrow the admin's
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connect(ctx, env.EndpointAddr(), env.DialAddress, env.CAPEM, "app_iam")
	if err != nil {
		t.Fatalf("IAM login: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	var iam bool
	if err := conn.QueryRow(ctx, "SELECT current_user, pg_has_role('rds_iam', 'MEMBER')").Scan(&user, &iam); err != nil {
		t.Fatal(err)
	}
	if user != "app_iam" || !iam {
		t.Fatalf("logged in as %q (rds_iam: %v), want app_iam in rds_iam", user, iam)
	}
}

// connect is the application's own login: the AWS SDK's default chain
// signs a token for the endpoint, and TLS verifies the endpoint's name.
// dialAddress stands for the network path to RDS.
func connect(ctx context.Context, endpoint, dialAddress string, caPEM []byte, user string) (*pgx.Conn, error) {
	aws, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	token, err := auth.BuildAuthToken(ctx, endpoint, aws.Region, user, aws.Credentials)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(endpoint)
	cfg, err := pgx.ParseConfig("host=" + host + " port=" + port + " dbname=postgres sslmode=verify-full")
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg.User, cfg.Password = user, token
	cfg.TLSConfig = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
	cfg.Fallbacks = nil
	cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{host}, nil }
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dialAddress)
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
