//go:build !linux

package loadgen

import "syscall"

// hogProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// Stop must run.
func hogProcAttr() *syscall.SysProcAttr { return nil }
