// Command caddy is Caddy with the standard modules plus workspace_profile.
// It is what `go run ./cmd/caddy` and CI use; production builds use xcaddy
// (see docs/xcaddy.md) and end up with the same module set.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/workspace-edge/caddy-workspace-profile/caddymodule"
)

func main() {
	caddycmd.Main()
}
