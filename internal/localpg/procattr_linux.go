package localpg

import "syscall"

// procAttr puts the child in its own process group (so a terminal's
// Ctrl-C reaches only us and Stop decides how the server ends, and initdb
// can be killed with the bootstrap postgres it runs) and asks the kernel to SIGKILL it if the thread that started it
// dies, so a crashed or killed test binary leaves no server behind. Go sets
// the death signal after switching user, so the credential change does not
// clear it.
func (r runAs) procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: r.credential(),
	}
}
