package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// keyPrefix is the prefix of the route's API keys, the default one when
// the route takes none (such a key is still one, and still kept here).
func (h *Handler) keyPrefix() string {
	if h.APIKeys != nil {
		return h.APIKeys.prefix()
	}
	return apikey.DefaultPrefix
}

// holdsKey reports whether a query or cookie value, percent-decoded,
// starts with prefix in any letter case: a value a legacy backend could
// take for a key of its own.
func holdsKey(value, prefix string) bool {
	if v, err := url.QueryUnescape(value); err == nil {
		value = v
	}
	return len(value) >= len(prefix) && strings.EqualFold(value[:len(prefix)], prefix)
}

// withoutKeyValues drops from a raw query every pair whose value holds a
// key, and from the Cookie headers every cookie whose value does, so that
// the backend never sees an API key, not even one sent somewhere the
// route does not read credentials from: a legacy backend that takes its
// own api_key parameter would otherwise act on a second identity beside
// the edge's identity headers (a service account's key beside a user's).
func withoutKeyValues(raw string, hdr http.Header, prefix string) string {
	if raw != "" {
		kept := make([]string, 0, 4)
		for pair := range strings.SplitSeq(raw, "&") {
			drop := false
			for sub := range strings.SplitSeq(pair, ";") {
				if _, v, ok := strings.Cut(sub, "="); ok && holdsKey(v, prefix) {
					drop = true
				}
			}
			if !drop && pair != "" {
				kept = append(kept, pair)
			}
		}
		raw = strings.Join(kept, "&")
	}
	cookies := hdr["Cookie"]
	if len(cookies) == 0 {
		return raw
	}
	var out []string
	for _, line := range cookies {
		var kept []string
		for c := range strings.SplitSeq(line, ";") {
			if _, v, ok := strings.Cut(c, "="); ok && holdsKey(strings.Trim(strings.TrimSpace(v), `"`), prefix) {
				continue
			}
			kept = append(kept, strings.TrimSpace(c))
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(hdr, "Cookie")
	} else {
		hdr["Cookie"] = out
	}
	return raw
}
