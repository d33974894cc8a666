//go:build unix

package integration

import "syscall"

// stopProcess freezes pid (SIGSTOP), as a server that stops answering.
func stopProcess(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }

// continueProcess lets a stopped pid run again (SIGCONT).
func continueProcess(pid int) { syscall.Kill(pid, syscall.SIGCONT) }
