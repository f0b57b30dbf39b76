package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
)

// requestTarget is the method and URI the client addressed, which htm and
// htu must name: Caddy's original request (before any rewrite, this
// route's included), on the configured origin or else the request's own
// scheme and Host. The path is normalized on its own before it follows the
// origin, so that its dot segments never climb out of an origin's path
// prefix. internal/authn calls it only when it checks a proof.
func (d *DPoP) requestTarget(r *http.Request) (method, uri string) {
	method, u := r.Method, r.URL
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		method, u = orig.Method, orig.URL
	}
	origin := d.origin
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	path := u.EscapedPath()
	if p, ok := dpop.NormalizePath(path); ok {
		path = p
	} // else left as is: htu's comparison refuses it
	return method, origin + path
}
