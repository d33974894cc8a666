//go:build unix

package localsrv

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Child's stop and kill need Unix signals; the servers this package starts
// run on Unix only.

func TestChildStopAndKill(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh on PATH: %v", err) // every Unix has one; its absence is a broken machine
	}
	// start runs script; its standard output is returned to read from.
	start := func(script string) (*Child, *bufio.Reader) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		cmd := exec.Command(sh, "-c", script)
		cmd.SysProcAttr = CurrentAccount().SysProcAttr()
		cmd.Stdout = w
		c, err := StartChild(cmd)
		w.Close() // the child holds its own copy
		if err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(r)
	}

	// Obeys SIGTERM: Stop returns nil promptly.
	c, _ := start("sleep 60")
	if err := c.Stop(SigTerm(), 5*time.Second, nil); err != nil {
		t.Errorf("Stop of an obedient child: %v", err)
	}
	if gone, _ := c.Exited(); !gone {
		t.Error("child still running after Stop")
	}

	// Ignores SIGTERM: Stop kills it after the grace and says so.
	c, out := start("trap '' TERM; echo ready; sleep 60 & wait")
	// The trap is installed once the child says ready.
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the stubborn child said %q, %v; want ready", line, err)
	}
	begin := time.Now()
	if err := c.Stop(SigTerm(), 300*time.Millisecond, nil); err != ErrKilled {
		t.Errorf("Stop of a stubborn child = %v, want ErrKilled", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if gone, _ := c.Exited(); !gone {
		t.Error("child still running after Stop")
	}
}
