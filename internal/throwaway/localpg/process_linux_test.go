package localpg

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

// helperEnv makes the test binary act as a program that starts a server
// and then hangs, so a test can kill it and watch the server die with it.
const helperEnv = "LOCALPG_TEST_HELPER"

func TestMain(m *testing.M) {
	srvtest.Main(m, helperEnv, func() (int, string, error) {
		srv, err := Start(context.Background(), Options{})
		if err != nil {
			return 0, "", err
		}
		return srv.proc.Pid(), filepath.Dir(srv.DataDir), nil
	})
}

// serverProcs lists the postmaster and its children. The children are
// not in the postmaster's process group (each backend calls setsid), so
// they are found by parent pid.
func serverProcs(t *testing.T, postmaster int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var procs []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := srvtest.ProcStat(pid); ok && (pid == postmaster || ppid == postmaster) {
			procs = append(procs, pid)
		}
	}
	return procs
}

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, pids []int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var alive []int
		for _, pid := range pids {
			if _, ok := srvtest.ProcStat(pid); ok {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server processes still alive after %v: %v", within, alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStopRemovesDirAndProcesses(t *testing.T) {
	t.Parallel()
	requireServer(t)
	srv, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, base := srv.proc.Pid(), srv.baseDir
	procs := serverProcs(t, pid)
	if len(procs) < 2 {
		t.Errorf("expected a postmaster and its auxiliary processes, found %v", procs)
	}
	begin := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("fast shutdown took %v", d)
	}
	waitGone(t, procs, time.Second)
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
	if _, err := os.Stat(srv.baseDir); !os.IsNotExist(err) {
		t.Errorf("temp dir still there: %v", err)
	}
}

// TestServerDiesWithParent kills a process that started a server without
// stopping it: Pdeathsig must take the server down with it.
func TestServerDiesWithParent(t *testing.T) {
	t.Parallel()
	requireServer(t)
	cmd, pid, base := srvtest.StartHelper(t, helperEnv)

	procs := serverProcs(t, pid)
	if len(procs) < 2 {
		t.Errorf("expected a postmaster and its auxiliary processes, found %v", procs)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, procs, 10*time.Second)
	if err := removeStaleShm(filepath.Join(base, "data")); err != nil {
		t.Error(err)
	}
}
