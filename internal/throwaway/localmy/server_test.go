package localmy

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestStartPlainServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})

	if srv.Host != "127.0.0.1" || srv.Port == 0 || srv.Addr() != "127.0.0.1:"+strconv.Itoa(srv.Port) {
		t.Errorf("Host %q Port %d Addr %q", srv.Host, srv.Port, srv.Addr())
	}
	if major, _, _ := strings.Cut(srv.Version, "."); major == "" || strings.Trim(major, "0123456789") != "" {
		t.Errorf("Version = %q", srv.Version)
	}
	if p := srv.BinPath("mariadb"); p == "" {
		t.Error(`BinPath("mariadb") found no client`)
	}

	ctx := context.Background()
	if err := srv.Exec(ctx,
		"CREATE USER app@'%' IDENTIFIED BY 'secret'",
		"CREATE DATABASE appdb",
		"GRANT ALL ON appdb.* TO app@'%'",
	); err != nil {
		t.Fatal(err)
	}
	if err := srv.ExecIn(ctx, "appdb", "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}

	tcp := openDB(t, srv.Config("app", "secret", "appdb"))
	if got := queryOne(t, tcp, "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE(), ' ', COUNT(*)) FROM t"); got != "app@% appdb 2" {
		t.Errorf("over TCP: %q", got)
	}
	sockCfg, err := mysql.ParseDSN(srv.SocketDSN("app", "secret", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	sock := openDB(t, sockCfg)
	// Over the socket the anonymous ''@localhost would win over app@'%'
	// had Start not removed it.
	if got := queryOne(t, sock, "SELECT CONCAT(CURRENT_USER(), ' ', @@max_allowed_packet)"); got != "app@% 67108864" {
		t.Errorf("over the socket: %q", got)
	}
	if _, err := sql.Open("mysql", srv.DSN("app", "secret", "appdb")); err != nil {
		t.Errorf("DSN: %v", err)
	}

	// Wrong password: a real auth error from the server.
	bad := openDB(t, srv.Config("app", "wrong", ""))
	var myErr *mysql.MySQLError
	if err := bad.PingContext(ctx); !errors.As(err, &myErr) || myErr.Number != 1045 {
		t.Errorf("wrong password: %v, want MySQL error 1045", err)
	}

	var n int
	if err := srv.QueryRow(ctx, "SELECT COUNT(*) FROM appdb.t WHERE id > ?", 1).Scan(&n); err != nil || n != 1 {
		t.Errorf("QueryRow: %d, %v", n, err)
	}

	// Errors from a later statement of one string are reported, wrapped.
	err = srv.ExecIn(ctx, "appdb", "SELECT 1; SELECT no_such_column FROM t")
	if !errors.As(err, &myErr) || myErr.Number != 1054 {
		t.Errorf("Exec with a bad statement: %v, want a wrapped MySQL error 1054", err)
	}
}

func TestLargeRowRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Exec(ctx, "CREATE DATABASE big", "CREATE TABLE big.blobs (id INT PRIMARY KEY, b LONGBLOB)"); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, srv.Config("root", "", "big"))
	want := make([]byte, 20<<20)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO blobs VALUES (1, ?)", want); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := db.QueryRowContext(ctx, "SELECT b FROM blobs WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes back, want the same 20 MiB", len(got))
	}
}

func TestStartInGivenDirWithSettingsAndLog(t *testing.T) {
	t.Parallel()
	// A t.TempDir is 0700 root-owned when tests run as root: Start must make
	// it traversable for the mysql user.
	dir := t.TempDir()
	var log syncbuf.Buffer
	srv := startServer(t, Options{Dir: dir, Log: &log, Settings: map[string]string{"max-connections": "50", "skip-log-bin": ""}})

	if srv.DataDir != filepath.Join(dir, "data") || srv.Socket != filepath.Join(dir, "sock", "mariadbd.sock") {
		t.Errorf("DataDir %q Socket %q", srv.DataDir, srv.Socket)
	}
	var n int
	if err := srv.QueryRow(context.Background(), "SELECT @@max_connections").Scan(&n); err != nil || n != 50 {
		t.Errorf("max_connections = %d, %v; want 50", n, err)
	}
	if !strings.Contains(log.String(), "ready for connections") {
		t.Errorf("Options.Log did not receive the server log:\n%s", log.String())
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "mysql")); err != nil {
		t.Errorf("Stop removed a caller-provided Dir: %v", err)
	}
	// A second server in the same Dir would clobber the first one's data.
	if again, err := Start(context.Background(), Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "not empty") {
		_ = again.Stop()
		t.Errorf("Start in a used Dir: %v, want a not-empty error", err)
	}
}

func TestStopClosesPortAndRemovesDir(t *testing.T) {
	t.Parallel()
	requireServer(t)
	srv, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := srv.p.base
	begin := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if gone, _ := srv.proc.Exited(); !gone {
		t.Error("mariadbd still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", srv.Port)
	}
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still there after Stop: %v", base, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopReportsCrashedServer(t *testing.T) {
	t.Parallel()
	requireServer(t)
	srv, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.proc.Kill()
	if err := srv.Stop(); err == nil || !strings.Contains(err.Error(), "exited before Stop") {
		t.Errorf("Stop after a crash = %v, want it reported", err)
	}
}

// TestStartFailureIsExplainedAndCleanedUp is not parallel: it points
// TMPDIR at an empty dir to see that the temp dir Start made is removed.
func TestStartFailureIsExplainedAndCleanedUp(t *testing.T) {
	requireServer(t)
	noTempLeft := srvtest.NoTempLeft(t)
	err := srvtest.MustFail(t, "with a bad setting", 0, func() (srvtest.Server, error) {
		return Start(context.Background(), Options{Settings: map[string]string{"innodb_buffer_pool_size": "bogus"}})
	})
	for _, want := range []string{"--- server log", "innodb", "bogus"} {
		if !strings.Contains(strings.ToLower(err.Error()), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	noTempLeft()
}

// TestStartTimeoutCleansUp is not parallel (TMPDIR).
func TestStartTimeoutCleansUp(t *testing.T) {
	requireServer(t)
	srvtest.StartTimeoutCleansUp(t, func(timeout time.Duration) (srvtest.Server, error) {
		return Start(context.Background(), Options{StartTimeout: timeout})
	})
}

func TestStartOnTakenPortFailsFast(t *testing.T) {
	t.Parallel()
	requireServer(t)
	srvtest.TakenPortFailsFast(t, func(port int) (srvtest.Server, error) {
		return Start(context.Background(), Options{Port: port})
	}, bindFailed)
}

func TestStopNilServer(t *testing.T) {
	var srv *Server
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
}
