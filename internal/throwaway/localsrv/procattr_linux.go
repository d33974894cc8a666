package localsrv

import "syscall"

// SysProcAttr puts the child in its own process group (so a terminal's
// Ctrl-C reaches only us and Stop decides how the server ends, and an
// installer can be killed with the bootstrap server it runs) and asks the
// kernel to SIGKILL it if the thread that started it dies, so a crashed or
// killed test binary leaves no server behind (StartChild keeps that thread
// alive). Go sets the death signal after switching user, so the
// credential change does not clear it.
func (a Account) SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: a.credential(),
	}
}
