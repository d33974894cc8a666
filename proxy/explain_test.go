package proxy

import (
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestExplainResetAtConnect: a connect that fails with a reset reached
// the upstream, which reset the connection at once (a fault injector, a
// firewall): it is explained as a reset during the login, not as an
// upstream that cannot be reached; a refused connect still is the latter.
func TestExplainResetAtConnect(t *testing.T) {
	target := Target{Host: "db.example", DialAddr: "127.0.0.1:5432"}
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	x := ExplainLoginFailure(dial(syscall.ECONNRESET), target)
	if x == nil || x.Reason != failure.Upstream || !strings.Contains(x.Text(), "reset the connection during the login") {
		t.Errorf("reset at connect explained as %+v", x)
	}
	x = ExplainLoginFailure(dial(syscall.ECONNREFUSED), target)
	if x == nil || x.Reason != failure.UpstreamDial || !strings.Contains(x.Text(), "cannot reach the upstream db.example at 127.0.0.1:5432") {
		t.Errorf("refused connect explained as %+v", x)
	}
}
