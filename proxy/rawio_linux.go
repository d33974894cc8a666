//go:build linux && !386

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// The relay's reads and writes of a plain socket are made with raw system
// calls from inside RawConn.Read and RawConn.Write (issue 15: CPU per
// transaction). Go's own Read and Write go through the scheduler's syscall
// entry and exit, and entering a system call while every P is idle wakes
// sysmon from its deep sleep: a relay that waits between small messages
// (the shape of an OLTP session) then paid, per message, a futex wake of
// sysmon, its 20 µs polling sleeps and a futex sleep to park it again,
// about a fifth of the proxy's CPU per select-only transaction on a
// 2-vCPU machine. The sockets are non-blocking (the netpoller set them
// so), so these calls never block: the scheduler has nothing to hand off
// while they run, and a socket that is not ready is waited on through the
// poller as before (the callback returns false), with the same deadlines
// and the same net.ErrClosed when the connection is closed under it.

// sysRead is read(2) on a non-blocking fd without the scheduler's syscall
// entry. len(p) must be positive.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// sysWrite is write(2) on a non-blocking fd without the scheduler's
// syscall entry. len(p) must be positive.
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// rawSock reads and writes a plain TCP or unix socket as net.Conn's Read
// and Write do (same results, deadlines, errors), with sysRead and
// sysWrite. Like a net.Conn it may be used from several goroutines: reads
// are serialised among themselves, writes likewise (as the socket's own
// locks do), and a read and a write run at once. The callbacks are bound
// once and their state kept here, so a call allocates nothing.
type rawSock struct {
	conn net.Conn // for the addresses in errors
	rc   syscall.RawConn

	rmu    sync.Mutex // guards the read in progress
	rp     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex // guards the write in progress
	wp      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(uintptr) bool
}

// newRawSock is c's raw socket, or nil when c is not a plain TCP or unix
// connection.
func newRawSock(c net.Conn) *rawSock {
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	s := &rawSock{conn: c, rc: rc}
	s.readFn, s.writeFn = s.tryRead, s.tryWrite
	return s
}

// ClientWriter is what a handshake writes its client's greeting with:
// c's raw socket when c is a plain TCP or unix connection (see above;
// the greeting is the one client write of a reused session's handshake),
// else c.
func ClientWriter(c net.Conn) io.Writer {
	if r := newRawSock(c); r != nil {
		return r
	}
	return c
}

// Read is net.Conn.Read.
func (s *rawSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rp, s.rn, s.rerr = p, 0, 0
	err := s.rc.Read(s.readFn)
	s.rp = nil
	if err != nil {
		return 0, s.opError("read", err)
	}
	switch {
	case s.rerr != 0:
		return 0, s.opError("read", os.NewSyscallError("read", s.rerr))
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *rawSock) tryRead(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, s.rp)
		switch errno {
		case 0:
			s.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = errno
		return true
	}
}

// Write is net.Conn.Write: all of p, or the error that stopped it.
func (s *rawSock) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wp, s.wn, s.werr = p, 0, 0
	err := s.rc.Write(s.writeFn)
	n := s.wn
	s.wp = nil
	if err != nil {
		return n, s.opError("write", err)
	}
	if s.werr != 0 {
		return n, s.opError("write", os.NewSyscallError("write", s.werr))
	}
	return n, nil
}

func (s *rawSock) tryWrite(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, errno := sysWrite(fd, s.wp[s.wn:])
		switch errno {
		case 0:
			s.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = errno
			return true
		}
	}
	return true
}

// CloseWrite is net.TCPConn.CloseWrite (shutdown(2) with SHUT_WR), made
// raw for the same reason as the reads and writes: a session's end sends
// the client its FIN from here on every connection.
func (s *rawSock) CloseWrite() error {
	var errno syscall.Errno
	err := s.rc.Control(func(fd uintptr) {
		_, _, errno = syscall.RawSyscall(syscall.SYS_SHUTDOWN, fd, syscall.SHUT_WR, 0)
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("shutdown", errno)
	}
	if err != nil {
		return s.opError("close", err)
	}
	return nil
}

// opError says a failed read or write as net.Conn does. RawConn's own
// errors (closed, past the deadline) come wrapped for "raw-read" and
// "raw-write": their cause is kept, so errors.Is(err, net.ErrClosed) and
// timeouts read as from net.Conn.
func (s *rawSock) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: s.conn.LocalAddr().Network(), Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
