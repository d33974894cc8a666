package integration

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// TestMySQLClientPluginMismatch: a client whose default auth plugin is not
// the one the proxy offers (--default-auth, or MySQL 9 clients without
// mysql_native_password) is switched to its own plugin, as servers do,
// and logs in; clients refuse an OK to an answer they took as provisional.
func TestMySQLClientPluginMismatch(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	for _, plugin := range []string{"mysql_native_password", "caching_sha2_password", "client_ed25519", "sha256_password"} {
		out, stderr, err := mysqlCLI(t, port, iamUser, "--default-auth="+plugin, "-e", "SELECT CURRENT_USER()")
		if err != nil || strings.TrimSpace(out) != iamUser+"@%" {
			t.Errorf("--default-auth=%s: %v %q\n%s", plugin, err, out, stderr)
		}
	}
}

// TestMySQL8ShapedUpstream: an upstream that greets like RDS for MySQL 8
// (no MariaDB extended capabilities, caching_sha2_password by default) and
// answers the proxy's mysql_clear_password login with an AuthSwitchRequest
// anyway. The client sees that greeting and logs in; queries work.
func TestMySQL8ShapedUpstream(t *testing.T) {
	w.enter(t)
	front, err := w.StartMySQLFront(emulator.MySQLOptions{IAMUsers: []string{iamUser}, MySQL8: true, AlwaysSwitch: true, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	port := startMySQLProxy(t, func(c *launch.Config) { c.DialAddress = front.Addr() })

	c := dialRaw(t, port)
	g := c.login(mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth | mywire.CapDeprecateEOF)
	if g.ServerVersion != "8.0.39" || g.Caps&mywire.CapLongPassword == 0 || g.ExtCaps != 0 {
		t.Fatalf("greeting %q caps %x ext %x; want MySQL 8's", g.ServerVersion, g.Caps, g.ExtCaps)
	}
	out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT CURRENT_USER(); SELECT name FROM items WHERE id = 2")
	if err != nil || strings.Join(strings.Fields(out), " ") != iamUser+"@% two" {
		t.Fatalf("mysql through a MySQL 8-shaped upstream: %v %q\n%s", err, out, stderr)
	}
	ctx := testCtx(t, 20*time.Second)
	var n int
	if err := mysqlDB(t, port, iamUser).QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err != nil || n < 3 {
		t.Fatalf("go-sql-driver through a MySQL 8-shaped upstream: %d, %v", n, err)
	}
}

// TestMySQLUpstreamRefusesAtGreeting: an upstream that answers the
// connection with an ERR instead of a greeting (too many connections, host
// blocked) has its number and text reach the client.
func TestMySQLUpstreamRefusesAtGreeting(t *testing.T) {
	w.enter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mywire.WriteServerError(c, 0, 1040, "Too many connections")
			c.Close()
		}
	}()
	port := startMySQLProxy(t, func(c *launch.Config) { c.DialAddress = ln.Addr().String() })
	_, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT 1")
	if err == nil || !strings.Contains(stderr, "ERROR 1040") || !strings.Contains(stderr, "rds-iam-proxy: upstream refused the login: Too many connections") {
		t.Fatalf("mysql: %v\n%s", err, stderr)
	}
}

// TestMySQLAbandonedLoginEndsCleanly: a client that connects and leaves
// (a TCP health probe, a port scan) makes the proxy finish the upstream
// handshake with a failed login, not a cut connection, which MySQL would
// count towards blocking the proxy's host (max_connect_errors).
func TestMySQLAbandonedLoginEndsCleanly(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	c := dialRaw(t, port)
	c.mustRead()
	c.Close()
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(w.logs.String(), `user=rds-iam-proxy-abandoned`)
	})
	if out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT 1"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("after an abandoned login: %v %q %s", err, out, stderr)
	}
}
