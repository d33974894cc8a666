package loadgen

import "syscall"

// hogProcAttr kills a hog process when this process dies (a test binary
// killed mid-storm), so no busy loop outlives its storm.
func hogProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
