package integration

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// world is what every test shares: one PostgreSQL and one MariaDB, one
// emulated AWS and an RDS front before each (the demo's stack), and the
// process environment the AWS chain reads. Tests run one at a time, and
// each leaves it as it found it: see world_changes_test.go.
type world struct {
	*iamstack.Stack
	pg     *localpg.Server
	aws    *emulator.Server
	front  *emulator.Postgres
	my     *emulator.MySQL
	caFile string
	logs   *syncbuf.Buffer // everything the proxy and the emulator logged

	stateMu    sync.Mutex
	state      worldState // as the last test left it (at first, as TestMain made it)
	stateAfter string     // the name of that test
}

var w *world // set once by TestMain

// Users the suite creates, as on RDS.
const (
	iamUser      = "app_user"      // in rds_iam; the role may connect as it
	plainUser    = "plain_user"    // exists, not in rds_iam
	unlistedUser = "unlisted_user" // in rds_iam; no policy allows it
	appDB        = "appdb"
)

const setupSQL = `
CREATE ROLE rds_iam;
CREATE ROLE app_user WITH LOGIN;
GRANT rds_iam TO app_user;
CREATE ROLE plain_user WITH LOGIN;
CREATE ROLE unlisted_user WITH LOGIN;
GRANT rds_iam TO unlisted_user;
`

const appSQL = `
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO items (name) VALUES ('one'), ('two'), ('three');
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app_user;
GRANT USAGE, SELECT ON SEQUENCE items_id_seq TO app_user;
GRANT CREATE, USAGE ON SCHEMA public TO app_user;
`

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		if shortskip.InCI() {
			fmt.Fprintln(os.Stderr, "integration: -short under CI=true would skip the whole suite: CI must run it (drop -short)")
			return 1
		}
		fmt.Println("integration: skipped under -short")
		return 0
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	stack, err := iamstack.Start(ctx, iamstack.Options{
		SetupSQL: []string{setupSQL}, AppDB: appDB, AppSQL: appSQL,
		Role: "app", AllowUsers: []string{iamUser}, Logger: log.With("component", "emulator"),
		MySQL: &iamstack.MySQLOptions{
			AppDB: appDB, AppSQL: mysqlAppSQL,
			IAMUsers: []string{iamUser, unlistedUser}, OtherUsers: []string{plainUser},
			Grants: []string{
				"GRANT ALL ON appdb.* TO 'app_user'@'%'",
				"GRANT SELECT ON performance_schema.* TO 'app_user'@'%'",
				"GRANT ALL ON appdb.* TO 'plain_user'@'%'",
				"GRANT ALL ON appdb.* TO 'unlisted_user'@'%'",
			},
		},
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: cannot start the test world:", err)
		return 1
	}
	stack.UseInProcess()
	w = &world{Stack: stack, pg: stack.PG, aws: stack.AWS, front: stack.Front, my: stack.MyFront, caFile: stack.CAFile, logs: logs}
	ctx, cancel = context.WithTimeout(context.Background(), snapshotTimeout)
	baseline, err := w.snapshot(ctx)
	cancel()
	if err != nil {
		stack.Close()
		fmt.Fprintln(os.Stderr, "integration: cannot read the state of the test world:", err)
		return 1
	}
	w.state, w.stateAfter = baseline, "TestMain"
	code := m.Run()
	// The tests each checked their own changes (world.enter); this is
	// the whole run's, against the world as it started.
	ctx, cancel = context.WithTimeout(context.Background(), snapshotTimeout)
	end, err := w.snapshot(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: cannot read the state of the test world:", err)
		code = 1
	} else if changes := end.changesFrom(baseline); len(changes) > 0 {
		fmt.Fprintf(os.Stderr, "integration: the tests left the world changed:\n  %s\n", strings.Join(changes, "\n  "))
		code = 1
	}
	stack.Close()
	if left := endLivingChildren(3 * time.Second); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: processes the tests started outlived them (killed now):\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	if leaked := w.leakedSecrets(); leaked != "" {
		fmt.Fprintln(os.Stderr, "integration: a secret appeared in the logs:", leaked)
		return 1
	}
	return code
}

// mysqlAppSQL is the MariaDB side's app schema.
var mysqlAppSQL = []string{
	"CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)",
	"INSERT INTO items (name) VALUES ('one'), ('two'), ('three')",
}

// appPolicy lets a principal connect as app_user only.
func appPolicy() emulator.Policy { return w.front.ConnectPolicy(iamUser) }

// leakedSecrets names the first secret (by kind, never the value) that
// shows up in the captured logs.
func (wd *world) leakedSecrets() string { return secretIn(wd.logs.String()) }

// secretIn names the first secret in text: anything the emulator issued or
// verified (secret keys, session tokens, token signatures), a token's
// signed parts, or a test's marker secret.
func secretIn(text string) string {
	for i, s := range w.aws.AWS.SeenSecrets() {
		if len(s) >= 8 && strings.Contains(text, s) {
			return fmt.Sprintf("secret #%d (%d chars)", i, len(s))
		}
	}
	for _, marker := range []string{"X-Amz-Signature", "X-Amz-Security-Token", "MARKERSECRET", "MARKERSESSION"} {
		if strings.Contains(text, marker) {
			return marker
		}
	}
	return ""
}

// logSink is where logs go besides the capture: stderr with -v and
// RDS_IAM_PROXY_TEST_LOGS=1, else nowhere.
func logSink() io.Writer {
	if os.Getenv("RDS_IAM_PROXY_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// proxyConfig is the configuration a user would write for the emulated DB.
func proxyConfig() launch.Config {
	c := launch.NewConfig(config.Postgres, fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()))
	c.DialAddress, c.Listen, c.CABundle = w.front.Addr(), "127.0.0.1:0", w.caFile
	return c
}

// mysqlConfig is proxyConfig for the emulated MySQL instance.
func mysqlConfig() launch.Config {
	c := launch.NewConfig(config.MySQL, fmt.Sprintf("%s:%d", w.my.Endpoint(), w.my.Port()))
	c.DialAddress, c.Listen, c.CABundle = w.my.Addr(), "127.0.0.1:0", w.caFile
	return c
}

// startProxy starts a proxy with cfg (as edited by mods) and stops it when
// the test ends. It returns the listening port.
func startProxy(t *testing.T, mods ...func(*launch.Config)) string {
	t.Helper()
	return startProxyWith(t, proxyConfig(), mods...)
}

// startMySQLProxy is startProxy for the MySQL instance.
func startMySQLProxy(t *testing.T, mods ...func(*launch.Config)) string {
	t.Helper()
	return startProxyWith(t, mysqlConfig(), mods...)
}

func startProxyWith(t *testing.T, cfg launch.Config, mods ...func(*launch.Config)) string {
	t.Helper()
	return startRunning(t, cfg, mods...).Port()
}

// startRunning is startProxyWith returning the running proxy (its pool,
// its limits).
func startRunning(t *testing.T, cfg launch.Config, mods ...func(*launch.Config)) *launch.Running {
	t.Helper()
	for _, m := range mods {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "proxy", "test", t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := launch.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}

// dsn is a libpq connection string to the proxy.
func dsn(port, user string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable connect_timeout=20", port, user, appDB)
}

// otherCAFile writes a CA that signed nothing the world serves: a bundle
// the upstream's certificate does not chain to.
func otherCAFile(t *testing.T) string {
	t.Helper()
	ca, err := emulator.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(file, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
