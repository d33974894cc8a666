package integration

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/localpg"
)

// world is what every test shares: one PostgreSQL, one emulated AWS and RDS
// front. Tests run one at a time (they change the process environment the
// AWS chain reads).
type world struct {
	pg     *localpg.Server
	aws    *emulator.Server
	front  *emulator.Postgres
	caFile string
	dir    string
	logs   *syncBuffer // everything the proxy and the emulator logged
}

var w *world // set once by TestMain, read-only after

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
		fmt.Println("integration: skipped under -short")
		return 0
	}
	var err error
	w, err = startWorld()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: cannot start the test world:", err)
		return 1
	}
	code := m.Run()
	w.close()
	if leaked := w.leakedSecrets(); leaked != "" {
		fmt.Fprintln(os.Stderr, "integration: a secret appeared in the logs:", leaked)
		return 1
	}
	return code
}

func startWorld() (*world, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wd := &world{logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(wd.logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug}))

	pg, err := localpg.Start(ctx, localpg.Options{})
	if err != nil {
		return nil, err
	}
	wd.pg = pg
	if err := pg.Exec(ctx, setupSQL); err != nil {
		wd.close()
		return nil, err
	}
	if err := pg.Exec(ctx, "CREATE DATABASE "+appDB); err != nil {
		wd.close()
		return nil, err
	}
	if err := pg.ExecIn(ctx, appDB, appSQL); err != nil {
		wd.close()
		return nil, err
	}
	wd.aws, err = emulator.StartServer(emulator.Options{Logger: log.With("component", "emulator")}, "")
	if err != nil {
		wd.close()
		return nil, err
	}
	wd.front, err = wd.aws.AWS.StartPostgres(wd.aws.CA, emulator.PostgresOptions{Backend: pg.Addr(), Logger: log.With("component", "emulator")})
	if err != nil {
		wd.close()
		return nil, err
	}
	wd.aws.AWS.AddRole("app", appPolicy())
	if err := wd.aws.AWS.SetInstanceProfile("app"); err != nil {
		wd.close()
		return nil, err
	}
	wd.dir, err = os.MkdirTemp("", "rds-iam-proxy-it-")
	if err != nil {
		wd.close()
		return nil, err
	}
	wd.caFile = filepath.Join(wd.dir, "emulator-ca.pem")
	if err := os.WriteFile(wd.caFile, wd.aws.CA.CertPEM(), 0o644); err != nil {
		wd.close()
		return nil, err
	}
	isolateAWSEnv(wd.aws.SDKEnv(), wd.dir)
	return wd, nil
}

// appPolicy lets the instance-profile role connect as app_user only.
func appPolicy() emulator.Policy {
	return emulator.Policy{Statements: []emulator.Statement{{
		Effect: "Allow", Action: []string{"rds-db:connect"},
		Resource: []string{authtoken.DBUserARN("us-east-1", "123456789012", "db-EMULATEDPOSTGRES0001", iamUser)},
	}}}
}

func (wd *world) close() {
	if wd.front != nil {
		wd.front.Close()
	}
	if wd.aws != nil {
		wd.aws.Close()
	}
	if wd.pg != nil {
		wd.pg.Stop()
	}
	if wd.dir != "" {
		os.RemoveAll(wd.dir)
	}
}

// leakedSecrets names the first secret (by kind, never the value) that
// shows up in the captured logs.
func (wd *world) leakedSecrets() string {
	logs := wd.logs.String()
	for i, s := range wd.aws.AWS.SeenSecrets() {
		if len(s) >= 8 && strings.Contains(logs, s) {
			return fmt.Sprintf("secret #%d (%d chars)", i, len(s))
		}
	}
	if strings.Contains(logs, "X-Amz-Signature") || strings.Contains(logs, "X-Amz-Security-Token") {
		return "an IAM token (X-Amz-Signature / X-Amz-Security-Token)"
	}
	return ""
}

// isolateAWSEnv makes the AWS chain see only the emulator.
func isolateAWSEnv(env map[string]string, dir string) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
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
	return launch.Config{
		Engine:      "postgres",
		Endpoint:    fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()),
		DialAddress: w.front.Addr(),
		Listen:      "127.0.0.1:0",
		CABundle:    w.caFile,
	}
}

// startProxy starts a proxy with cfg (as edited by mods) and stops it when
// the test ends. It returns the listening port.
func startProxy(t *testing.T, mods ...func(*launch.Config)) string {
	t.Helper()
	cfg := proxyConfig()
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
	addr := r.Addr().String()
	return addr[strings.LastIndexByte(addr, ':')+1:]
}

// dsn is a libpq connection string to the proxy.
func dsn(port, user string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable connect_timeout=20", port, user, appDB)
}

// syncBuffer is a goroutine-safe log capture.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
