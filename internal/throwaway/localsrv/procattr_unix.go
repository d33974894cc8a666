//go:build unix && !linux

package localsrv

import "syscall"

// SysProcAttr puts the child in its own process group so a terminal's
// Ctrl-C reaches only us and an installer can be killed with its bootstrap
// server. Outside Linux there is no portable parent-death signal; Stop (or
// the caller's cleanup) must run.
func (a Account) SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: a.credential(),
	}
}
