package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// pty is a pseudo-terminal whose slave side is a child's controlling
// terminal, so a program that asks on /dev/tty (the proxy, the AWS CLI's
// getpass) asks here; the test reads the master side and types into it.
type pty struct {
	master *os.File
	out    *syncbuf.Buffer // everything the child wrote to the terminal
}

// typeLine types s and Enter on the terminal.
func (p *pty) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.WriteString(s + "\n"); err != nil {
		t.Fatalf("type into the pty: %v", err)
	}
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
