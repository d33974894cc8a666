//go:build unix && !linux

package localpg

import "syscall"

// procAttr puts the child in its own process group so a terminal's Ctrl-C
// reaches only us and initdb can be killed with its bootstrap postgres. Outside Linux there is no portable
// parent-death signal; Stop (or the caller's cleanup) must run.
func (r runAs) procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: r.credential(),
	}
}
