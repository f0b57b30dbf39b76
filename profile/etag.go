package profile

import "strings"

// MatchETag reports whether an If-Match or If-None-Match header value
// matches etag (a quoted tag). "*" matches any existing representation.
// If-Match uses the strong comparison (weak tags never match); If-None-Match
// uses the weak one (RFC 9110 section 13.1).
func MatchETag(header, etag string, weak bool) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if strings.HasPrefix(t, "W/") {
			if !weak {
				continue
			}
			t = t[2:]
		}
		if t == etag {
			return true
		}
	}
	return false
}
