package memstore_test

import (
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
	"github.com/workspace-edge/caddy-workspace-profile/profile/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) profile.Store { return memstore.New() })
}
