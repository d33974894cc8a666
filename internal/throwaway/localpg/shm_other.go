//go:build !(linux && (amd64 || arm64 || riscv64 || loong64))

package localpg

// removeStaleShm is a no-op where we do not know the shmctl syscall; a
// server killed with SIGKILL there leaks a tiny SysV segment (ipcrm -m).
func removeStaleShm(string) error { return nil }
