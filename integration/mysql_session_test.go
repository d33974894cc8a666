package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// TestMySQLMaxConnections: over the cap the client gets ERROR 1040 with
// the proxy's text, not a silent close; once a slot frees the next
// connects.
func TestMySQLMaxConnections(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t, func(c *launch.Config) { c.MaxConnections = 1 })
	ctx := testCtx(t, 30*time.Second)
	db := mysqlDB(t, port, iamUser)
	first, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT 1")
	if err == nil || !strings.Contains(stderr, "ERROR 1040") || !strings.Contains(stderr, "rds-iam-proxy: too many connections: the proxy's limit of 1 is reached") {
		t.Fatalf("over the cap: %v\n%s", err, stderr)
	}
	if code := mysqlConnectCode(t, port, iamUser); code != 1040 {
		t.Fatalf("error %d, want 1040", code)
	}
	first.Close()
	db.Close()
	waitFor(t, 5*time.Second, func() bool { return mysqlConnectCode(t, port, iamUser) == 0 })
}

// TestMySQLPinnedUserAndAttributes: --db-user replaces the client's user
// upstream; the client's connection attributes reach the server.
func TestMySQLPinnedUserAndAttributes(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t, func(c *launch.Config) { c.DBUser = iamUser })
	db := mysqlDB(t, port, "whoever")
	ctx := testCtx(t, 30*time.Second)
	var cur string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&cur); err != nil || cur != iamUser+"@%" {
		t.Fatalf("CURRENT_USER() %q, %v; want the pinned %s", cur, err, iamUser)
	}
	var name string
	err := db.QueryRowContext(ctx, "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME = '_client_name'").Scan(&name)
	if err != nil || name != "Go-MySQL-Driver" {
		t.Fatalf("_client_name attribute upstream %q, %v; want Go-MySQL-Driver", name, err)
	}
}
