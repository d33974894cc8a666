//go:build !linux

package proxy

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available:
// keepalive alone then notices an idle session's dead path, and data in
// flight waits for the kernel's retransmission limit.
func setUserTimeout(syscall.RawConn, time.Duration) error { return nil }
