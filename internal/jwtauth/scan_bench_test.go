package jwtauth

import (
	"encoding/base64"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// benchPayload is the claims set of a typical OIDC access token, as the
// token cache holds it: a cache hit cuts it with splitClaims, a miss
// checks it with the strict-JSON rule first.
var benchPayload = []byte(`{"iss":"https://idp.example.com/oauth2/default","sub":"00u1a2b3c4d5e6f7g8h9",` +
	`"aud":["api://workspace","account"],"exp":1764892800,"iat":1764889200,"nbf":1764889200,` +
	`"jti":"AT.Xk2lq8ZbWm3N0vR5tY7uI9oP1aS4dF6gH8jK0lZ2xC","cid":"0oa1b2c3d4e5f6g7h8i9",` +
	`"scp":["openid","profile","email"],"preferred_username":"alice.liddell@example.com",` +
	`"email":"alice.liddell@example.com","given_name":"Alice","family_name":"Liddell","UserType":1,` +
	`"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}`)

// BenchmarkSplitClaims is the payload cut of a cached GET, beside the
// json.Unmarshal it replaced.
func BenchmarkSplitClaims(b *testing.B) {
	b.Run("split", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := splitClaims(benchPayload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeClaims(benchPayload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStrictJSON is the strict-JSON rule on a claims set and on a
// JOSE header, which every token that is not in the cache passes.
func BenchmarkStrictJSON(b *testing.B) {
	hdr, _ := base64.RawURLEncoding.DecodeString("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0")
	for _, c := range []struct {
		name string
		raw  []byte
	}{{"claims", benchPayload}, {"header", hdr}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := jsonscan.CheckStrict(c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFoldEqual is a claim name and a route segment compared as
// .NET compares them.
func BenchmarkFoldEqual(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !FoldEqual("preferred_username", "Preferred_UserName") || FoldEqual("account", "accounts") {
			b.Fatal("FoldEqual")
		}
	}
}

// BenchmarkClaimsStr reads the string claims a request reads.
func BenchmarkClaimsStr(b *testing.B) {
	c, err := decodeClaims(benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Str("sub"); !ok {
			b.Fatal("sub")
		}
		if _, ok := jsonscan.Float(c["exp"]); !ok {
			b.Fatal("exp")
		}
	}
}
