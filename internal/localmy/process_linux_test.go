package localmy

import (
	"bufio"
	"context"
	"fmt"
	"net"
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
const helperEnv = "LOCALMY_TEST_HELPER"

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
	fmt.Printf("SERVER %d %s\n", srv.proc.Pid(), srv.p.base)
	time.Sleep(time.Hour) // until killed
	return 0
}

// alive reports whether pid is a live process (a zombie counts as dead).
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
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
