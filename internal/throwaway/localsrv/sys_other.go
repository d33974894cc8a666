//go:build !unix

package localsrv

import (
	"os"
	"syscall"
)

// SysProcAttr: no process groups or user switching here; the package only
// builds so that commands importing it compile everywhere.
func (a Account) SysProcAttr() *syscall.SysProcAttr { return nil }

// KillGroup kills just the process: there are no process groups here.
func KillGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func fileOwner(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// SigQuit: without Unix signals, a stop falls through to a kill.
func SigQuit() os.Signal { return os.Kill }

// SigTerm: without Unix signals, a stop falls through to a kill.
func SigTerm() os.Signal { return os.Kill }
