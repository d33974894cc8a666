// A new session without a terminal (Setsid) is a unix notion; on Windows
// the prompt has no terminal to find and nothing to test here.

//go:build unix

package prompt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets the test re-run its own binary as a child that asks.
func TestMain(m *testing.M) {
	if os.Getenv("PROMPT_TEST_CHILD") == "1" {
		_, err := MFACode(context.Background(), "arn:aws:iam::123456789012:mfa/me")
		fmt.Printf("available=%v no-terminal=%v\n", Available(), errors.Is(err, ErrNoTerminal))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestNoTerminal: a process without a controlling terminal (a sidecar)
// is told so at once, instead of waiting for an answer.
func TestNoTerminal(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROMPT_TEST_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // a new session has no terminal
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "available=false no-terminal=true") {
		t.Errorf("child without a terminal says %q", out)
	}
}
