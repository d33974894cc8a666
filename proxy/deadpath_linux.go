package proxy

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// canWatch: Linux reports what the watch needs in TCP_INFO.
const canWatch = true

// tcpState reads the socket's TCP_INFO: whether sent data or a
// zero-window probe waits for the peer's acknowledgment, and how long ago
// the peer last acknowledged anything.
func tcpState(c *net.TCPConn) (outstanding bool, sinceAck time.Duration, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return false, 0, err
	}
	var info *unix.TCPInfo
	var gerr error
	if err := raw.Control(func(fd uintptr) { info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return false, 0, err
	}
	if gerr != nil {
		return false, 0, gerr
	}
	return info.Unacked > 0 || info.Probes > 0, time.Duration(info.Last_ack_recv) * time.Millisecond, nil
}
