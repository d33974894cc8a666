package rdsiam_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/rdsiam"
)

func newSigner(t *testing.T, o rdsiam.Options) *rdsiam.Signer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := rdsiam.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ConfigurePgConn pins a parsed configuration to the endpoint: a DSN's
// sslmode=prefer plaintext fallback, its host and user are replaced, the
// token is fresh per call, TLS verifies the endpoint's name.
func TestConfigurePgConnPinsTheEndpoint(t *testing.T) {
	s := newSigner(t, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: caFile, User: "app_user"})
	cfg, err := pgconn.ParseConfig("host=elsewhere.example port=1 user=someone password=leaked sslmode=prefer dbname=app")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Fallbacks) == 0 {
		t.Fatal("sslmode=prefer parsed without a fallback: the check below proves nothing")
	}
	first := *cfg
	if err := s.ConfigurePgConn(context.Background(), &first); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(endpoint)
	if first.Host != host || strconv.Itoa(int(first.Port)) != port || first.User != "app_user" || len(first.Fallbacks) != 0 {
		t.Errorf("configured %s:%d as %s with %d fallbacks", first.Host, first.Port, first.User, len(first.Fallbacks))
	}
	if first.TLSConfig == nil || first.TLSConfig.ServerName != host {
		t.Errorf("TLS: %+v, want verification of %s", first.TLSConfig, host)
	}
	if !strings.Contains(first.Password, "X-Amz-Signature=") {
		t.Error("the password is not an IAM token")
	}
	second := *cfg
	if err := s.ConfigurePgConn(context.Background(), &second); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(context.Background(), &second)
	if err != nil {
		t.Fatalf("login with the configuration: %v", s.Explain(context.Background(), err))
	}
	conn.Close(context.Background())
}

func TestNewRefusesWithoutAUser(t *testing.T) {
	_, err := rdsiam.New(context.Background(), rdsiam.Options{Endpoint: endpoint})
	if err == nil || !strings.Contains(err.Error(), "Options.User") {
		t.Fatalf("New without a user: %v", err)
	}
}

// New fails on what the proxy refuses at start: here a CA bundle that
// does not exist.
func TestNewFailsEarly(t *testing.T) {
	_, err := rdsiam.New(context.Background(), rdsiam.Options{Endpoint: endpoint, User: "app_user", CABundle: t.TempDir() + "/missing.pem"})
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("New with a missing CA bundle: %v", err)
	}
}

// Explain leaves alone what is not a failed login, and keeps the
// driver's error inside what it explains.
func TestExplainPassesThrough(t *testing.T) {
	s := newSigner(t, rdsiam.Options{Endpoint: endpoint, DialAddress: closedAddr(t), CABundle: caFile, User: "app_user"})
	ctx := context.Background()
	if s.Explain(ctx, nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
	f := &failure.Failure{Reason: failure.Upstream, Cause: "already explained"}
	if got := s.Explain(ctx, f); got != f {
		t.Errorf("an explained failure came back as %v", got)
	}
	cfg, _ := pgconn.ParseConfig("dbname=app")
	if err := s.ConfigurePgConn(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := pgconn.ConnectConfig(ctx, cfg)
	var explained *failure.Failure
	if !errors.As(s.Explain(ctx, err), &explained) || explained.Reason != failure.UpstreamDial || !errors.Is(explained, err) {
		t.Fatalf("a refused dial: %v", s.Explain(ctx, err))
	}
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A CA bundle the endpoint's certificate does not chain to: both drivers'
// TLS errors come out as the proxy's TLS failure, for PostgreSQL and
// MySQL alike.
func TestExplainUntrustedCertificate(t *testing.T) {
	ca, err := emulator.NewCA("a CA that signed nothing here")
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(other, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pg := newSigner(t, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: other, User: "app_user"})
	cfg, _ := pgconn.ParseConfig("dbname=app")
	if err := pg.ConfigurePgConn(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, pgErr := pgconn.ConnectConfig(ctx, cfg)

	my := newSigner(t, rdsiam.Options{Engine: "mysql", Endpoint: myEndpoint, DialAddress: myDialAddress, CABundle: other, User: "app_user"})
	connector, err := my.MySQLConnector(nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	myErr := db.PingContext(ctx)

	for name, got := range map[string]error{"postgres": pg.Explain(ctx, pgErr), "mysql": my.Explain(ctx, myErr)} {
		var f *failure.Failure
		if !errors.As(got, &f) || f.Reason != failure.UpstreamTLS || f.Fix == "" {
			t.Errorf("%s: %v, want the proxy's TLS failure with a fix", name, got)
		}
	}
}
