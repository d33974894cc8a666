//go:build unix

package localpg

import (
	"os"
	"syscall"
)

// credential is nil when the server runs as the current user, so no
// setuid/setgroups happens for the common non-root case.
func (r runAs) credential() *syscall.Credential {
	if !r.switchUser {
		return nil
	}
	// Groups left empty: the server must not inherit root's supplementary
	// groups.
	return &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}
}

// killGroup SIGKILLs the whole process group led by pid: initdb and the
// bootstrap postgres it runs, or the postmaster (whose children each call
// setsid, and exit by themselves when the postmaster dies). Errors are
// ignored: the group being gone already is the goal.
func killGroup(pid int) {
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

// syscallSIGQUIT asks PostgreSQL programs for an immediate shutdown.
const syscallSIGQUIT = syscall.SIGQUIT
