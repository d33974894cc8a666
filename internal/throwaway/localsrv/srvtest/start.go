package srvtest

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Server is a server of the package under test (*localpg.Server,
// *localmy.Server).
type Server interface{ Stop() error }

// MustFail runs start, which must fail (within limit, unless it is 0),
// and returns its error for the caller's own checks. how says how it was
// meant to fail, after "Start": "with a bad setting". A server that
// started anyway is stopped.
func MustFail(t *testing.T, how string, limit time.Duration, start func() (Server, error)) error {
	t.Helper()
	begin := time.Now()
	srv, err := start()
	if err == nil {
		_ = srv.Stop()
		t.Fatalf("Start succeeded %s", how)
	}
	if d := time.Since(begin); limit > 0 && d > limit {
		t.Errorf("Start took %v to fail %s", d, how)
	}
	return err
}

// NoTempLeft points TMPDIR at an empty directory for the rest of the test
// and returns a check that nothing is left in it: a failed Start removes
// the temp dir it made. It sets TMPDIR: not for parallel tests.
func NoTempLeft(t *testing.T) (check func()) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return func() {
		t.Helper()
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("failed Start left %v in TMPDIR", entries)
		}
	}
}

// TakenPort is a loopback port that a listener holds until the test
// ends.
func TakenPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// BadOption is Options that Start must reject, naming Want in its error.
type BadOption[O any] struct {
	Name string
	O    O
	Want string
}

// RejectsBadOptions requires start to refuse each case, with an error
// that names what is wrong.
func RejectsBadOptions[O any, S Server](t *testing.T, start func(context.Context, O) (S, error), cases []BadOption[O]) {
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			srv, err := start(context.Background(), tc.O)
			if err == nil {
				_ = srv.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.Want) {
				t.Errorf("error %q does not mention %q", err, tc.Want)
			}
		})
	}
}

// StartTimeoutCleansUp cuts Start short with a StartTimeout of 20 ms
// (start applies timeout): the error must say so, come at once, and
// leave nothing behind. Not for parallel tests (TMPDIR).
func StartTimeoutCleansUp(t *testing.T, start func(timeout time.Duration) (Server, error)) {
	t.Helper()
	noTempLeft := NoTempLeft(t)
	// The install alone takes far longer than 20 ms; a start this fast
	// would be a bug in how the timeout is applied.
	err := MustFail(t, "within its 20 ms timeout (is it applied?)", 5*time.Second, func() (Server, error) {
		return start(20 * time.Millisecond)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want it to wrap context.DeadlineExceeded", err)
	}
	noTempLeft()
}

// TakenPortFailsFast starts a server on a port another listener holds:
// Start must fail soon, with an error that explainsBind accepts.
func TakenPortFailsFast(t *testing.T, start func(port int) (Server, error), explainsBind func(msg string) bool) {
	t.Helper()
	port := TakenPort(t)
	err := MustFail(t, "on a taken port", 15*time.Second, func() (Server, error) { return start(port) })
	if !explainsBind(err.Error()) {
		t.Errorf("error does not explain the bind failure:\n%v", err)
	}
}
