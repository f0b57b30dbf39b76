// Package caddyworkspaceprofile plugs the workspace_profile handler into a
// Caddy build. xcaddy imports a plugin's module root, so this package exists
// only to import the module (see docs/xcaddy.md); the code is in caddymodule/ and
// the domain in profile/.
package caddyworkspaceprofile

import (
	_ "github.com/workspace-edge/caddy-workspace-profile/caddymodule"
)
