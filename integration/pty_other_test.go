//go:build !linux

package integration

import (
	"os/exec"
	"testing"
)

// startInPty needs Linux's /dev/ptmx; the suite runs on Linux, and this
// keeps the package compiling for the GOOS=darwin and windows vets.
func startInPty(t *testing.T, _ *exec.Cmd) *pty {
	t.Helper()
	t.Fatal("pseudo-terminals are set up for Linux only")
	return nil
}

// noTerminal: a session of its own is set up for Linux only (see
// startInPty); elsewhere the command keeps the test's session.
func noTerminal(*exec.Cmd) {}
