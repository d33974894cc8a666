package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestJoinKeepsCauseAndFix(t *testing.T) {
	for _, tc := range []struct{ cause, fix, want string }{
		{"the DB is down", "start it", "the DB is down. Fix: start it"},
		{"the DB is down.", "start it", "the DB is down. Fix: start it"},
		{"the DB is down", "", "the DB is down"},
	} {
		if got := Join(tc.cause, tc.fix); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.cause, tc.fix, got, tc.want)
		}
	}
}

func TestAsFindsAWrappedFailure(t *testing.T) {
	under := errors.New("connection refused")
	f := Wrap(UpstreamDial, under, "cannot reach db", "check the network")
	err := fmt.Errorf("login: %w", f)
	got, ok := As(err)
	if !ok || got != f || !errors.Is(err, under) {
		t.Fatalf("As(%v) = %v, %v; errors.Is(under) = %v", err, got, ok, errors.Is(err, under))
	}
	if _, ok := As(under); ok {
		t.Fatal("a plain error is not a Failure")
	}
}
