package caddymodule

import (
	"mime"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// FuzzContentType: the PUT's Content-Type and Content-Encoding parsing
// (catalogue row D02, see docs/threat-model.md). isJSONContentType accepts
// only what parses as application/json or application/*+json with no
// charset or UTF-8, and answers the same in any letter case;
// isIdentityEncoding accepts only lists of "identity"; and through the
// handler, a PUT refused by either is 415 and never reaches the store,
// while one both accept is not 415.
func FuzzContentType(f *testing.F) {
	for _, seed := range [][2]string{
		{"application/json", ""}, {"application/json; charset=utf-8", "identity"}, {"", ""}, {"text/plain", ""},
		{"application/x-www-form-urlencoded", ""}, {"multipart/form-data; boundary=x", ""}, {"application/json; charset=iso-8859-1", ""},
		{"application/json", "gzip"}, {"application/json", "br"}, {"application/json", "deflate"}, {"application/json", "gzip, identity"},
		{"application/merge-patch+json", "IDENTITY"}, {`application/json; charset="UTF-8"`, " , identity"}, {"application/json;", "x-gzip"},
	} {
		f.Add(seed[0], seed[1])
	}
	k := jwtauthtest.NewKey(f, jwa.RS256(), "k")
	h, store := newFileHandler(f, jwtauthtest.JWKS(f, k), func(h *Handler) { h.CreateMissing = true })
	tok := k.Mint(f, jwtauthtest.Claims("fuzz-ct"), nil)
	f.Fuzz(func(t *testing.T, ct, ce string) {
		json := isJSONContentType(ct)
		if json {
			mt, params, err := mime.ParseMediaType(ct)
			if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
				t.Fatalf("accepted %q: %q %v", ct, mt, err)
			}
			if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
				t.Fatalf("accepted %q with charset %q", ct, cs)
			}
		}
		if up := asciiUpper(ct); isJSONContentType(up) != json {
			t.Fatalf("%q and %q answered differently", ct, up)
		}
		identity := isIdentityEncoding([]string{ce})
		if identity {
			for c := range strings.SplitSeq(ce, ",") {
				if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
					t.Fatalf("accepted coding %q in %q", c, ce)
				}
			}
		}
		if strings.ContainsAny(ct+ce, "\r\n\x00") {
			return // not a header value a server receives
		}
		before := store.calls.Load()
		rec := serve(t, h, "PUT", profilePath, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": ct, "Content-Encoding": ce},
			`{"FirstName":"Fuzz"}`)
		switch {
		case !json || !identity:
			if rec.Code != 415 || store.calls.Load() != before {
				t.Fatalf("%q / %q: %d, %d store calls", ct, ce, rec.Code, store.calls.Load()-before)
			}
		case rec.Code == 415:
			t.Fatalf("%q / %q accepted by both parsers but answered 415", ct, ce)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
