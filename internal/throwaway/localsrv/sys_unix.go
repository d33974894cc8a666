//go:build unix

package localsrv

import (
	"os"
	"syscall"
)

// credential is nil when the server runs as the current user, so no
// setuid/setgroups happens for the common non-root case.
func (a Account) credential() *syscall.Credential {
	if !a.Switch {
		return nil
	}
	// Groups left empty: the server must not inherit root's supplementary
	// groups.
	return &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID)}
}

// KillGroup SIGKILLs the whole process group led by pid: an installer and
// the bootstrap server it runs, or a server and any helpers in its group.
// Errors are ignored: the group being gone already is the goal.
func KillGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// fileOwner returns the numeric owner of a file, for permission checks.
func fileOwner(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// SigQuit is SIGQUIT (PostgreSQL's immediate shutdown).
func SigQuit() os.Signal { return syscall.SIGQUIT }

// SigTerm is SIGTERM (MariaDB's normal shutdown).
func SigTerm() os.Signal { return syscall.SIGTERM }
