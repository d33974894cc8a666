package integration

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"unsafe"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"golang.org/x/sys/unix"
)

// startInPty starts cmd in a new session with a new pseudo-terminal as its
// controlling terminal and stdin; cmd's stdout and stderr stay as set.
func startInPty(t *testing.T, cmd *exec.Cmd) *pty {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	defer slave.Close() // the child holds its own copy
	cmd.Stdin = slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	p := &pty{master: master, out: &syncbuf.Buffer{}}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := master.Read(buf)
			p.out.Write(buf[:k])
			if err != nil {
				return
			}
		}
	}()
	return p
}

// noTerminal makes cmd run in a session of its own with no controlling
// terminal, as a sidecar runs (even when the test itself has one).
func noTerminal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
