package localpg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
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
	var log syncbuf.Buffer
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
	noTempLeft := srvtest.NoTempLeft(t)
	err := srvtest.MustFail(t, "with a bad setting", 0, func() (srvtest.Server, error) {
		return Start(context.Background(), Options{Settings: map[string]string{"shared_buffers": "bogus"}})
	})
	for _, want := range []string{"--- server log", `"shared_buffers"`, "--- initdb output", "exited during startup"} {
		if !strings.Contains(err.Error(), want) {
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
	}, func(msg string) bool { return strings.Contains(msg, "could not bind") })
}

func TestStopNilServer(t *testing.T) {
	var srv *Server
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
}
