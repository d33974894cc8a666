package srvtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Main is a TestMain that lets the test binary act, when env is "1", as a
// program that starts a server (start returns its pid and base
// directory), says so on stdout and hangs until killed; see StartHelper.
func Main(m *testing.M, env string, start func() (pid int, base string, err error)) {
	if os.Getenv(env) != "1" {
		os.Exit(m.Run())
	}
	pid, base, err := start()
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("SERVER %d %s\n", pid, base)
	time.Sleep(time.Hour) // until killed
	os.Exit(0)
}

// StartHelper runs the test binary as Main's helper and returns it with
// its server's pid and base directory, which is removed when the test
// ends. The caller kills the helper to see what happens to the server;
// the helper is killed at the end of the test in any case.
func StartHelper(t *testing.T, env string) (helper *exec.Cmd, pid int, base string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if base != "" {
			_ = os.RemoveAll(base)
		}
	})

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
	if _, err := fmt.Sscanf(line, "SERVER %d %s", &pid, &base); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	return cmd, pid, base
}
