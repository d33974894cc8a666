package topology

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: a
// monitor must end with its context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
