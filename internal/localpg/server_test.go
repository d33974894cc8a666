package localpg

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestStartPlainServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})

	if srv.Host != "127.0.0.1" || srv.Port == 0 || srv.Addr() != "127.0.0.1:"+strconv.Itoa(srv.Port) {
		t.Errorf("Host %q Port %d Addr %q", srv.Host, srv.Port, srv.Addr())
	}
	major, _, _ := strings.Cut(srv.Version, ".")
	if _, err := strconv.Atoi(major); err != nil {
		t.Errorf("Version = %q", srv.Version)
	}
	if _, err := os.Stat(srv.BinPath("postgres")); err != nil {
		t.Errorf("BinPath: %v", err)
	}

	ctx := context.Background()
	// Several statements in one call (one implicit transaction), then
	// CREATE DATABASE alone, which cannot run inside a transaction.
	if err := srv.Exec(ctx, "CREATE ROLE app LOGIN; GRANT pg_read_all_stats TO app"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "CREATE DATABASE appdb OWNER app"); err != nil {
		t.Fatal(err)
	}
	if got := queryOne(t, srv.ConnString("app", "appdb"), "SELECT current_user || '@' || current_database()"); got != "app@appdb" {
		t.Errorf("got %q", got)
	}
	if got := queryOne(t, srv.ConnString("postgres", "postgres"), "SHOW max_connections"); got != "200" {
		t.Errorf("max_connections = %q, want the default 200", got)
	}

	err := srv.Exec(ctx, "SELECT 1; SELECT no_such_column")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42703" {
		t.Errorf("Exec with a bad statement: %v, want a wrapped PgError 42703", err)
	}
}

func TestStartInGivenDirWithSettingsAndLog(t *testing.T) {
	t.Parallel()
	// A t.TempDir is 0700 root-owned when tests run as root: Start must make
	// it traversable for the postgres user.
	dir := t.TempDir()
	var log syncBuffer
	srv := startServer(t, Options{Dir: dir, Log: &log, Settings: map[string]string{"max_connections": "50"}})

	if srv.DataDir != filepath.Join(dir, "data") || srv.SocketDir != filepath.Join(dir, "sock") {
		t.Errorf("DataDir %q SocketDir %q", srv.DataDir, srv.SocketDir)
	}
	if got := queryOne(t, srv.ConnString("postgres", "postgres"), "SHOW max_connections"); got != "50" {
		t.Errorf("max_connections = %q, want 50", got)
	}
	if !strings.Contains(log.String(), "ready to accept connections") {
		t.Errorf("Options.Log did not receive the server log:\n%s", log.String())
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("Stop removed a caller-provided Dir: %v", err)
	}
}

// TestStartFailureIsExplainedAndCleanedUp is not parallel: it points
// TMPDIR at an empty dir to see that the temp dir Start made is removed.
func TestStartFailureIsExplainedAndCleanedUp(t *testing.T) {
	requireServer(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv, err := Start(context.Background(), Options{Settings: map[string]string{"shared_buffers": "bogus"}})
	if err == nil {
		_ = srv.Stop()
		t.Fatal("Start succeeded with a bad setting")
	}
	for _, want := range []string{"--- server log", `"shared_buffers"`, "--- initdb output", "exited during startup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Errorf("failed Start left %v in TMPDIR", entries)
	}
}

// TestStartTimeoutCleansUp cuts Start short during initdb: the error must
// say so and nothing may be left behind. Not parallel (TMPDIR).
func TestStartTimeoutCleansUp(t *testing.T) {
	requireServer(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	begin := time.Now()
	// initdb alone takes far longer than 20 ms; a start this fast would be
	// a bug in how the timeout is applied.
	srv, err := Start(context.Background(), Options{StartTimeout: 20 * time.Millisecond})
	if err == nil {
		_ = srv.Stop()
		t.Fatal("Start finished within its 20 ms timeout: the timeout is not applied")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Start returned %v after its 20 ms timeout", d)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Errorf("timed-out Start left %v in TMPDIR", entries)
	}
}

func TestStartOnTakenPortFailsFast(t *testing.T) {
	t.Parallel()
	requireServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	begin := time.Now()
	srv, err := Start(context.Background(), Options{Port: port})
	if err == nil {
		_ = srv.Stop()
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("error does not explain the bind failure:\n%v", err)
	}
	if d := time.Since(begin); d > 15*time.Second {
		t.Errorf("took %v to report a taken port", d)
	}
}

func TestStopNilServer(t *testing.T) {
	var srv *Server
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
}
