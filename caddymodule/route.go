package caddymodule

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// routeMatch is what a request path is to the route.
type routeMatch uint8

const (
	// routeOther: the path names something else; the request passes on.
	routeOther routeMatch = iota
	// routeOwned: the path names the route, in its own or another spelling.
	routeOwned
	// routeRefused: the path would name the route, but only through an
	// encoded slash, a backslash, NUL or a control character: 400.
	routeRefused
)

// matchRoute says whether a request path names the route the way common
// backends read paths, so that no other spelling of it reaches the next
// handler (and so the legacy backend) without a verified token:
//
//   - letter case ignored, as ASP.NET Core routes (ordinal, ignoring case);
//   - percent-encoded bytes decoded once;
//   - `;name=value` path parameters dropped from each segment, as servlet
//     containers do before they resolve dot segments;
//   - repeated slashes merged, `.` and `..` segments resolved, and so any
//     number of trailing slashes tolerated;
//   - an encoded slash (%2F), a backslash (raw or %5C) read as a separator,
//     and NUL or a control character dropped: a path that names the route
//     only through one of these is refused, never passed on.
//
// The common spellings (the route exactly, or with one trailing slash)
// cost one comparison; any other path without a byte that could make it
// another spelling costs one case-insensitive comparison.
func matchRoute(escapedPath, route string) routeMatch {
	p := escapedPath
	if p == route || len(p) == len(route)+1 && p[len(p)-1] == '/' && p[:len(route)] == route {
		return routeOwned
	}
	if !mayRespell(p) {
		if jwtauth.FoldEqual(strings.TrimSuffix(p, "/"), route) {
			return routeOwned
		}
		return routeOther
	}
	segs, suspicious := canonicalSegments(p)
	if !segmentsEqual(segs, route) {
		return routeOther
	}
	if suspicious {
		return routeRefused
	}
	return routeOwned
}

// mayRespell reports whether p holds a byte that canonicalSegments would
// read otherwise than as written: an escape, a path parameter, a
// backslash, a dot segment, repeated slashes, or a control character.
func mayRespell(p string) bool {
	if p == "" || p[0] != '/' {
		return true
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%', c == ';', c == '\\', c < 0x20, c == 0x7f:
			return true
		case c == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.'):
			return true
		}
	}
	return false
}

// canonicalSegments reads an escaped path as a lenient backend would and
// returns its segments after dot-segment resolution. suspicious is set
// when a separator came from %2F, %5C or a backslash, or when a NUL or
// control character was dropped.
func canonicalSegments(p string) (segs []string, suspicious bool) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if d, ok := percentByte(p, i); ok {
			i += 2
			if d == '/' || d == '\\' {
				suspicious = true
				d = '/'
			}
			c = d
		} else if c == '\\' {
			suspicious = true
			c = '/'
		}
		if c < 0x20 || c == 0x7f {
			suspicious = true
			continue
		}
		b.WriteByte(c)
	}
	for seg := range strings.SplitSeq(b.String(), "/") {
		seg, _, _ = strings.Cut(seg, ";")
		switch seg {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, seg)
		}
	}
	return segs, suspicious
}

// segmentsEqual compares canonical segments with a clean route path.
func segmentsEqual(segs []string, route string) bool {
	rest := strings.TrimPrefix(route, "/")
	for _, s := range segs {
		want, tail, _ := strings.Cut(rest, "/")
		if rest == "" || !jwtauth.FoldEqual(s, want) {
			return false
		}
		rest = tail
	}
	return rest == ""
}

// percentByte decodes the escape %XX at p[i]; ok is false when p[i] is
// not the start of one. ParseUint in base 16 takes hex digits only: no
// sign, no underscore.
func percentByte(p string, i int) (b byte, ok bool) {
	if p[i] != '%' || i+2 >= len(p) {
		return 0, false
	}
	n, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
	return byte(n), err == nil
}

// identityHeaderPrefix names the headers that carry the caller's identity
// to the backends. Only the module sets them.
const identityHeaderPrefix = "x-workspace-"

// isIdentityHeader reports whether a header name is, to a backend, one of
// the identity headers: compared ignoring case, with `_` read as `-`, since
// CGI-style servers (PHP, WSGI, Rack) map both to `_`.
func isIdentityHeader(name string) bool {
	if len(name) < len(identityHeaderPrefix) {
		return false
	}
	for i := 0; i < len(identityHeaderPrefix); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != identityHeaderPrefix[i] {
			return false
		}
	}
	return true
}

// scrubIdentityHeaders deletes every client-sent identity header, so that
// on any path of the site the module is the only source of identity.
func scrubIdentityHeaders(h http.Header) {
	for name := range h {
		if isIdentityHeader(name) {
			delete(h, name)
		}
	}
}

// pathOverrideHeaders are read by some backends (IIS URL Rewrite, old
// Symfony and Zend) as the request's real path.
var pathOverrideHeaders = []string{"X-Original-Url", "X-Rewrite-Url"}

// scrubPathOverrides deletes a path-override header that names the route,
// so that a request for another path cannot be routed to the profile
// endpoint by a backend that honours it.
func scrubPathOverrides(h http.Header, route string) {
	for _, name := range pathOverrideHeaders {
		for _, v := range h[name] {
			p, _, _ := strings.Cut(v, "?")
			if matchRoute(p, route) != routeOther {
				delete(h, name)
				break
			}
		}
	}
}
