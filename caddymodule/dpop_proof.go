package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// requestTarget is the method and URI the client addressed, which htm and
// htu must name: Caddy's original request (before any rewrite, this
// route's included), on the configured origin or else the request's own
// scheme and Host. internal/authn calls it only when it checks a proof.
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
	return method, origin + u.EscapedPath()
}
