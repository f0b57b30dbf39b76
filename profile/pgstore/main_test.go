package pgstore_test

import (
	"os"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL server the tests may have
// started (see internal/pgtest).
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
