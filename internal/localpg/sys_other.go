//go:build !unix

package localpg

import (
	"os"
	"syscall"
)

// procAttr: no process groups or user switching here; the package only
// builds so that commands importing it compile everywhere.
func (r runAs) procAttr() *syscall.SysProcAttr { return nil }

func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func fileOwner(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// syscallSIGQUIT: without Unix signals, abort falls through to a kill.
var syscallSIGQUIT = os.Kill
