package caddymodule

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// headerNames are the names of the headers of an answer but Date, sorted.
func headerNames(h http.Header) string {
	var names []string
	for name := range h {
		if name != "Date" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// TestBadAPIKeysOneAnswer: an unknown, revoked, expired or malformed key,
// a value without the prefix in the key header and an over-long one all
// get the same 401, body and headers byte for byte but the request's
// trace id: the answer never tells which. In Bearer likewise.
func TestBadAPIKeysOneAnswer(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name, func(t *testing.T) {
			tc, _ := startKeyedSite(t, "storage "+b.args(t)+"\n\t\tcreate_missing\n\t\tapi_keys")
			ks := liveKeyStore(t)
			unknown, _, _ := apikey.Generate(ks.Prefix)
			revoked, rec := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
			revokeKey(t, ks, rec.ID)
			expired, _ := issueKey(t, ks, "key-owner", apikey.KindUser, func(r *apikey.Record) { r.Expires = time.Now().Add(-time.Minute) })
			good, _ := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
			// the good key with another last character (one of the 16 a
			// made key may end with: its last 2 bits are 0)
			other := "A"
			if strings.HasSuffix(good, other) {
				other = "E"
			}
			bad := map[string]string{
				"unknown":     unknown,
				"revoked":     revoked,
				"expired":     expired,
				"malformed":   ks.Prefix + "not-a-key",
				"over-long":   good + strings.Repeat("a", apikey.MaxKeyLen),
				"good secret": good[:len(good)-1] + other,
			}
			for where, hdr := range map[string]func(string) map[string]string{
				"header": func(k string) map[string]string { return map[string]string{"X-Api-Key": k} },
				"Bearer": bearer,
			} {
				var first itResponse
				for name, key := range bad {
					r := do(t, tc.Client, "GET", itBase+profilePath, hdr(key), "")
					wantRefusal(t, r, "InvalidToken", apiKeyDetail, apiKeyChallenge)
					r.body = traceIDField.ReplaceAll(r.body, []byte(`"traceId":""`))
					if first.status == 0 {
						first = r
						continue
					}
					if string(r.body) != string(first.body) || headerNames(r.header) != headerNames(first.header) {
						t.Fatalf("%s %s: %s %v\nagainst %s %v", where, name, r.body, r.header, first.body, first.header)
					}
					for name := range r.header {
						if name != "Date" && name != "Content-Length" && r.header.Get(name) != first.header.Get(name) {
							t.Fatalf("%s %s: %s: %q against %q", where, name, name, r.header.Get(name), first.header.Get(name))
						}
					}
				}
			}
			// a value without the prefix is a key in the header only
			wantRefusal(t, do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": "abc_" + good[len(ks.Prefix):]}, ""),
				"InvalidToken", apiKeyDetail, apiKeyChallenge)
			if r := do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": good}, ""); r.status != 200 {
				t.Fatalf("the good key: %d %s", r.status, r.body)
			}
		})
	}
}

// TestAPIKeyRefusedWithDPoPOrTwoCredentials: a key beside another
// credential, or twice, is 400; a key under the DPoP scheme, or any key
// under dpop required, is 401 and the key is not looked up (a key is not
// sender-constrained).
func TestAPIKeyRefusedWithDPoPOrTwoCredentials(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name, func(t *testing.T) {
			tc, k := startKeyedSite(t, "storage "+b.args(t)+"\n\t\tcreate_missing\n\t\tapi_keys")
			key, _ := issueKey(t, liveKeyStore(t), "key-owner", apikey.KindUser, nil)
			url := itBase + profilePath
			tok := k.Mint(t, jwtauthtest.Claims("key-owner"), nil)
			wantBadRequest(t, do(t, tc.Client, "GET", url, map[string]string{"X-Api-Key": key, "Authorization": "Bearer " + tok}, ""), twoCredsDetail)
			wantBadRequest(t, do(t, tc.Client, "GET", url+"?access_token="+tok, map[string]string{"X-Api-Key": key}, ""), twoCredsDetail)
			r := do(t, tc.Client, "GET", url, map[string]string{"Authorization": "DPoP " + key}, "")
			if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `DPoP realm="workspace", error="invalid_token"`) || r.problemCode(t) != "InvalidToken" {
				t.Fatalf("DPoP scheme: %d %v %s", r.status, r.header, r.body)
			}
		})
	}
	t.Run("dpop_required", func(t *testing.T) {
		tc, _ := startKeyedSite(t, "storage memory\n\t\tdpop required\n\t\tapi_keys")
		key, _ := issueKey(t, liveKeyStore(t), "key-owner", apikey.KindUser, nil)
		for _, hdr := range []map[string]string{{"X-Api-Key": key}, bearer(key), {"Authorization": "DPoP " + key}} {
			r := do(t, tc.Client, "GET", itBase+profilePath, hdr, "")
			if r.status != 401 || r.problemCode(t) != "InvalidToken" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP ") {
				t.Fatalf("%v: %d %v %s", hdr, r.status, r.header, r.body)
			}
		}
	})
}

// TestAPIKeyStoreDownIs503: a key store that cannot answer gets the
// answer of the profile store being down (503 StorageUnavailable,
// Retry-After), never a 401.
func TestAPIKeyStoreDownIs503(t *testing.T) {
	tc, _ := startKeyedSite(t, "storage memory\n\t\tapi_keys {\n\t\t\tstore test_keys down\n\t\t}")
	for _, hdr := range []map[string]string{{"X-Api-Key": "wsk_any"}, bearer("wsk_any")} {
		r := do(t, tc.Client, "GET", itBase+profilePath, hdr, "")
		env := r.envelope(t)
		if r.status != 503 || r.header.Get("Retry-After") != "5" || len(env.Errors) != 1 || env.Errors[0].Code != "StorageUnavailable" {
			t.Fatalf("%d %v %s", r.status, r.header, r.body)
		}
	}
}

// TestAPIKeyPlaceholders: the access log names a key's caller by the
// owner, the method api_key and the key's id, never the key.
func TestAPIKeyPlaceholders(t *testing.T) {
	backend := newKeyBackendServer(t)
	tc, _ := startKeyedSite(t, fmt.Sprintf("upstream %s {\n\t\t\theader_up X-Seen {http.auth.user.id}/{http.auth.user.method}/{http.auth.user.key_id}\n\t\t}\n\t\tapi_keys {\n\t\t\tstore memory\n\t\t}", backend.addr))
	key, rec := issueKey(t, liveKeyStore(t), "key-owner", apikey.KindUser, nil)
	if r := do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": key}, ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	seen := backend.requests()
	if len(seen) != 1 || seen[0].header.Get("X-Seen") != "key-owner/api_key/"+rec.ID {
		t.Fatalf("placeholders %q", seen[0].header.Get("X-Seen"))
	}
}

// TestAPIKeyRevokedAtOnceAndKeptOverReload: a key revoked (as the admin
// endpoint revokes it) is refused at the next request; a reload keeps the
// store's keyring and every key of a store that outlives the config.
func TestAPIKeyRevokedAtOnceAndKeptOverReload(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name+"/revoked", func(t *testing.T) {
			tc, _ := startKeyedSite(t, "storage "+b.args(t)+"\n\t\tcreate_missing\n\t\tapi_keys")
			ks := liveKeyStore(t)
			key, rec := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
			hdr := map[string]string{"X-Api-Key": key}
			if r := do(t, tc.Client, "GET", itBase+profilePath, hdr, ""); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			revokeKey(t, ks, rec.ID)
			wantRefusal(t, do(t, tc.Client, "GET", itBase+profilePath, hdr, ""), "InvalidToken", apiKeyDetail, apiKeyChallenge)
		})
	}
	reloadKeeps := func(t *testing.T, storage string) {
		cfg := "storage " + storage + "\n\t\tcreate_missing\n\t\tapi_keys"
		tc, _ := startKeyedSite(t, cfg)
		ks := liveKeyStore(t)
		key, _ := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
		hdr := map[string]string{"X-Api-Key": key}
		if r := do(t, tc.Client, "GET", itBase+profilePath, hdr, ""); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		startKeyedSite(t, cfg+"\n\t\tmax_body 32KiB") // a reload
		after := liveKeyStore(t)
		if after != ks || after.Keyring != ks.Keyring {
			t.Fatal("the reload made a new keyring")
		}
		if r := do(t, tc.Client, "GET", itBase+profilePath, hdr, ""); r.status != 200 {
			t.Fatalf("after the reload: %d %s", r.status, r.body)
		}
	}
	for _, b := range keyStoreBackends {
		if b.persistent {
			t.Run(b.name+"/reload", func(t *testing.T) { reloadKeeps(t, b.args(t)) })
		}
	}
	t.Run("outliving_store/reload", func(t *testing.T) {
		reloadKeeps(t, fmt.Sprintf("test_keys reload-%d", time.Now().UnixNano()))
	})
}

// TestAPIKeyConfigNeverShowsAKey: Caddy's /config/ holds the api_keys
// option and no key.
func TestAPIKeyConfigNeverShowsAKey(t *testing.T) {
	tc, _ := startKeyedSite(t, "storage memory\n\t\tapi_keys")
	key, _ := issueKey(t, liveKeyStore(t), "key-owner", apikey.KindUser, nil)
	do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": key}, "")
	r := do(t, tc.Client, "GET", itAdmin+"/config/", nil, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"api_keys":{}`) || strings.Contains(string(r.body), key[len("wsk_"):]) {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
