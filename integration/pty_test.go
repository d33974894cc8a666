package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal whose slave side is a child's controlling
// terminal, so a program that asks on /dev/tty (the proxy, the AWS CLI's
// getpass) asks here; the test reads the master side and types into it.
type pty struct {
	master *os.File
	out    *syncbuf.Buffer // everything the child wrote to the terminal
}

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

// typeLine types s and Enter on the terminal.
func (p *pty) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.WriteString(s + "\n"); err != nil {
		t.Fatalf("type into the pty: %v", err)
	}
}

// noTerminal makes cmd run in a session of its own with no controlling
// terminal, as a sidecar runs (even when the test itself has one).
func noTerminal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// waitOutput waits until the terminal shows want.
func (p *pty) waitOutput(t *testing.T, limit time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q within %s; it shows:\n%s", want, limit, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
