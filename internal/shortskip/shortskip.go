// Package shortskip is the one allowed skip: a test that needs a real
// server (PostgreSQL, MariaDB, the AWS CLI) may skip under -short on a
// developer's machine, never in CI. Under CI=true, -short fails the test
// instead, so a CI run cannot pass without having run it.
package shortskip

import (
	"os"
	"strconv"
	"testing"
)

// InCI reports whether CI is set to a true value (.ci/run sets CI=true).
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Skip skips t under -short, saying what it would have needed, or fails it
// when that happens in CI.
func Skip(t testing.TB, needs string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if InCI() {
		t.Fatalf("-short under CI=true would skip a test that %s: CI must run it (drop -short)", needs)
	}
	t.Skip(needs + "; skipped with -short")
}
