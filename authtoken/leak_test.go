package authtoken

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: what
// a connection starts (accept loop, login, relay, timers, background
// refresh) must end with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
