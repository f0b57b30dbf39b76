package introspect

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when any goroutine outlives them: a
// call, a timer or a connection that Close did not end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
