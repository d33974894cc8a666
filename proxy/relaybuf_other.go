//go:build !linux || 386

package proxy

import (
	"net"
	"syscall"
)

// rawConn: off Linux (and on linux/386), every source is read with a buffer held (see chunks).
func rawConn(net.Conn) syscall.RawConn { return nil }

// try is never called: rawConn gives no raw socket to read.
func (c *chunks) try(uintptr) bool { return true }
