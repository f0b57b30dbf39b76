package caddymodule

import (
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestNotModifiedCarriesNosniff: every answer on the route carries
// X-Content-Type-Options: nosniff, the 304 included.
func TestNotModifiedCarriesNosniff(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.CreateMissing = true })
	tok := k.Mint(t, jwtauthtest.Claims("u-304"), nil)
	rec := serve(t, h, "GET", profilePath, bearer(tok), "")
	hdr := bearer(tok)
	hdr["If-None-Match"] = rec.Header().Get("ETag")
	rec = serve(t, h, "GET", profilePath, hdr, "")
	if rec.Code != 304 || rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}
