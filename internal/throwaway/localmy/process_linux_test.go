package localmy

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

// helperEnv makes the test binary act as a program that starts a server
// and then hangs, so a test can kill it and watch the server die with it.
const helperEnv = "LOCALMY_TEST_HELPER"

func TestMain(m *testing.M) {
	srvtest.Main(m, helperEnv, func() (int, string, error) {
		srv, err := Start(context.Background(), Options{})
		if err != nil {
			return 0, "", err
		}
		return srv.proc.Pid(), srv.p.base, nil
	})
}

// alive reports whether pid is a live process (a zombie counts as dead).
func alive(pid int) bool {
	_, ok := srvtest.ProcStat(pid)
	return ok
}

// TestServerDiesWithParent kills a process that started a server without
// stopping it: Pdeathsig must take the server down with it.
func TestServerDiesWithParent(t *testing.T) {
	t.Parallel()
	requireServer(t)
	cmd, pid, base := srvtest.StartHelper(t, helperEnv)
	if !alive(pid) {
		t.Fatalf("mariadbd %d not running", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The socket file is left behind by a SIGKILL, but nothing may answer
	// on it. (A thread group's leader turns zombie before its other
	// threads are gone and the files closed, so both are polled. The TCP
	// port is not checked: once free, a parallel test may be given it.)
	sock := filepath.Join(base, "sock", "mariadbd.sock")
	answers := func() bool {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) || answers() {
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd %d still alive (or its socket answering) 10s after its parent was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
