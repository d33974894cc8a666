//go:build unix

package localsrv

import (
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
	start := func(script string) *Child {
		cmd := exec.Command(sh, "-c", script)
		cmd.SysProcAttr = CurrentAccount().SysProcAttr()
		c, err := StartChild(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Obeys SIGTERM: Stop returns nil promptly.
	c := start("sleep 60")
	if err := c.Stop(SigTerm(), 5*time.Second, nil); err != nil {
		t.Errorf("Stop of an obedient child: %v", err)
	}
	if gone, _ := c.Exited(); !gone {
		t.Error("child still running after Stop")
	}

	// Ignores SIGTERM: Stop kills it after the grace and says so.
	c = start("trap '' TERM; echo ready; sleep 60 & wait")
	time.Sleep(200 * time.Millisecond) // let the trap be installed
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
