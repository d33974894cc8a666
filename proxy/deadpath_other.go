//go:build !linux

package proxy

import (
	"errors"
	"net"
	"time"
)

// canWatch: elsewhere only keepalive notices a dead path, for idle
// sessions; data in flight waits for the kernel's retransmission limit.
const canWatch = false

func tcpState(*net.TCPConn) (bool, time.Duration, error) {
	return false, 0, errors.New("TCP state not available on this system")
}
