package localpg

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a program that starts a server
// and then hangs, so a test can kill it and watch the server die with it.
const helperEnv = "LOCALPG_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

func helperMain() int {
	srv, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Printf("SERVER %d %s\n", srv.proc.Pid(), filepath.Dir(srv.DataDir))
	time.Sleep(time.Hour) // until killed
	return 0
}

// procStat returns the state and parent pid of a process, ok=false if it
// is gone or a zombie (a killed, not yet reaped process is dead for us).
func procStat(pid int) (ppid int, ok bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// Fields after the ")" that ends the command name: state ppid ...
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, true
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
		if ppid, ok := procStat(pid); ok && (pid == postmaster || ppid == postmaster) {
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
			if _, ok := procStat(pid); ok {
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(time.Minute):
		t.Fatal("helper did not start a server within a minute")
	}
	var pid int
	var base string
	if _, err := fmt.Sscanf(line, "SERVER %d %s", &pid, &base); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })

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
