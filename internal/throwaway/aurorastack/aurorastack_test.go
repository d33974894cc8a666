package aurorastack

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
)

// TestMain fails the package's tests when a goroutine outlives Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect logs in as the stack's user through addr with a token signed
// for name, as a client dialing name would.
func connect(ctx context.Context, t *testing.T, s *Stack, name, addr string) *sql.Conn {
	t.Helper()
	tok, err := auth.BuildAuthToken(ctx, fmt.Sprintf("%s:%d", name, s.Cluster.Port()), "us-east-1", s.User,
		credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretKey, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = s.User, tok, "tcp", addr, s.Database
	cfg.AllowCleartextPasswords = true
	cfg.TLS = &tls.Config{RootCAs: s.AWS.CA.Pool(), ServerName: name, MinVersion: tls.VersionTLS12}
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{} // the pools' goodbyes after Close would log resets
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("login through %s as %s: %v", addr, name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A MySQL stack: three MariaDB servers behind an Aurora MySQL cluster, the
// IAM user may write hits on the writer only (no SUPER, no READ ONLY
// ADMIN), the proxy configuration is a MySQL one for the cluster name, and
// Close stops the servers.
func TestStartMySQL(t *testing.T) {
	shortskip.Skip(t, "starts three MariaDB servers")
	ctx := t.Context()
	begin := time.Now()
	s, err := Start(ctx, Options{Engine: "mysql", StaleDNS: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a 3-instance Aurora MySQL stack started in %v", time.Since(begin).Round(time.Millisecond))
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	if len(s.MySQL) != 3 || s.Engine != config.MySQL || s.Cluster.Engine() != "mysql" {
		t.Fatalf("%d MariaDB servers, engine %q, cluster engine %q; want 3, mysql, mysql", len(s.MySQL), s.Engine, s.Cluster.Engine())
	}
	pc := s.ProxyConfig()
	if pc.Engine != config.MySQL || pc.Endpoint != s.Cluster.WriterName()+":3306" || pc.DialAddress != s.Cluster.ClusterAddr() ||
		strings.Count(pc.InstanceDialAddresses, "=") != 3 || pc.CABundle != s.CAFile {
		t.Fatalf("ProxyConfig: engine %q endpoint %q dial %q instances %q CA %q", pc.Engine, pc.Endpoint, pc.DialAddress, pc.InstanceDialAddresses, pc.CABundle)
	}

	w := connect(ctx, t, s, s.Cluster.WriterName(), s.Cluster.ClusterAddr())
	if _, err := w.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('stack test')"); err != nil {
		t.Fatalf("INSERT into hits on the writer: %v", err)
	}
	var client string
	if err := w.QueryRowContext(ctx, "SELECT client FROM hits").Scan(&client); err != nil || client != "stack test" {
		t.Fatalf("SELECT from hits: %q, %v", client, err)
	}
	rows, err := w.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(g, "SUPER") || strings.Contains(g, "READ ONLY ADMIN") || strings.Contains(g, "ALL PRIVILEGES") {
			t.Errorf("the IAM user holds %q: read-only members would take its writes", g)
		}
	}
	rows.Close()
	var cipher, ro string
	if err := w.QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").Scan(&cipher); err != nil || cipher == "" {
		t.Errorf("the front's session to MariaDB: Ssl_cipher %q, %v; want TLS", cipher, err)
	}

	r := connect(ctx, t, s, s.Cluster.ReaderName(), s.Cluster.ReaderAddr())
	if err := r.QueryRowContext(ctx, "SELECT @@innodb_read_only").Scan(&ro); err != nil || ro != "1" {
		t.Fatalf("SELECT @@innodb_read_only on a reader: %q, %v; want 1", ro, err)
	}
	_, err = r.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('reader')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Fatalf("INSERT on a reader: %v; want error 1290", err)
	}

	addr := s.MySQL[0].Addr()
	s.Close()
	closed = true
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("MariaDB at %s still accepts connections after Close", addr)
	}
}
