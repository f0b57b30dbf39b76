package caddymodule

import (
	"net/http"
	"slices"
	"testing"
)

// varyAuthorization adds Authorization to whatever Vary a backend sent,
// once, and leaves a Vary that names it (any case) or "*" alone.
func TestVaryAuthorization(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{nil, []string{"Authorization"}},
		{[]string{"Accept-Language"}, []string{"Accept-Language", "Authorization"}},
		{[]string{"Accept-Language, authorization"}, []string{"Accept-Language, authorization"}},
		{[]string{"Origin", " AUTHORIZATION "}, []string{"Origin", " AUTHORIZATION "}},
		{[]string{"*"}, []string{"*"}},
		{[]string{"Authorization-Extra"}, []string{"Authorization-Extra", "Authorization"}},
	} {
		h := http.Header{}
		if c.in != nil {
			h["Vary"] = slices.Clone(c.in)
		}
		varyAuthorization(h)
		if !slices.Equal(h["Vary"], c.want) {
			t.Errorf("Vary %q: got %q, want %q", c.in, h["Vary"], c.want)
		}
	}
}
