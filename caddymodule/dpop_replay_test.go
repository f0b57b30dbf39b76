package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// The replay cache through a real Caddy: routes with their own windows,
// reloads that change its size, a flood spread over many keys, and origin
// with a path prefix.

// waitReplayCacheSize waits for the process's replay cache to take the
// size n: a config's lease is returned just after Caddy unloads it.
func waitReplayCacheSize(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for replayCache.c.Max() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the replay cache's size is %d, want %d (the live configs' largest)", replayCache.c.Max(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// freshReplayCache gives the process a new, empty replay cache before a
// test that fills it: entries other tests left within their window would
// fill it first (the cache outlives configs, by design).
func freshReplayCache(t *testing.T) {
	t.Helper()
	replayCache.Lock()
	defer replayCache.Unlock()
	replayCache.c = dpop.NewReplayCache(replayCache.c.Max())
	resizeReplayCache()
}

// twoWindowSites is a Caddyfile of two sites on the test port: localhost
// with dpop iat_window 10s and leeway 0s, 127.0.0.1 with iat_window 5m
// (and the default leeway, 30 s).
func twoWindowSites(jwksFile string) string {
	site := func(addr, opts string) string {
		return fmt.Sprintf(`%s {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		storage memory
		create_missing
		%s
	}
}
`, addr, jwksFile, testIssuer, testAudience, opts)
	}
	return itGlobal + site(itSite, "leeway 0s\n\t\tdpop {\n\t\t\tiat_window 10s\n\t\t}") +
		site("http://"+itAddr, "dpop {\n\t\t\tiat_window 5m\n\t\t}")
}

// TestDPoPRouteWindowsAreTheirOwn: a route with a short window, used by a
// client, does not narrow the window of a route with a long one that
// shares the process's replay cache: a proof 150 s old, never used, is
// still accepted on the long route after the short route saw the same key,
// and a proof used on the long route stays refused there.
func TestDPoPRouteWindowsAreTheirOwn(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	client := dpoptest.NewProver(t, jwa.ES256())
	c := jwtauthtest.Claims("window-user")
	c["cnf"] = map[string]any{"jkt": client.Thumbprint}
	tok := k.Mint(t, c, nil)
	tc := startCaddyfile(t, twoWindowSites(writeFile(t, "k.json", jwtauthtest.JWKS(t, k))))
	short, long := itSite+profilePath, "http://"+itAddr+profilePath
	now := time.Now()

	used := client.Proof(t, "GET", long, tok, now.Add(-120*time.Second), nil, nil)
	if r := doDPoP(t, tc, "GET", long, "DPoP "+tok, used); r.status != 200 {
		t.Fatalf("a 120 s old proof on the 5 min route: %d %s", r.status, r.body)
	}
	if r := doDPoP(t, tc, "GET", short, "DPoP "+tok, client.Proof(t, "GET", short, tok, time.Now(), nil, nil)); r.status != 200 {
		t.Fatalf("a fresh proof on the 10 s route: %d %s", r.status, r.body)
	}
	if r := doDPoP(t, tc, "GET", short, "DPoP "+tok, client.Proof(t, "GET", short, tok, now.Add(-60*time.Second), nil, nil)); r.status != 401 {
		t.Fatalf("a 60 s old proof on the 10 s route: %d %s", r.status, r.body)
	}
	older := client.Proof(t, "GET", long, tok, now.Add(-150*time.Second), nil, nil)
	if r := doDPoP(t, tc, "GET", long, "DPoP "+tok, older); r.status != 200 {
		t.Fatalf("an unused 150 s old proof on the 5 min route, after the 10 s route saw the key: %d %s", r.status, r.body)
	}
	for name, p := range map[string]string{"120 s": used, "150 s": older} {
		r := doDPoP(t, tc, "GET", long, "DPoP "+tok, p)
		if r.status != 401 || !strings.Contains(string(r.body), "already used") {
			t.Fatalf("replay of the %s old proof on the 5 min route: %d %s", name, r.status, r.body)
		}
	}
}

// TestDPoPReplayCacheSizeReloadKeepsProofsUsed: a reload that changes
// replay_cache_size (up, then down) keeps every used proof refused, and
// fresh proofs pass.
func TestDPoPReplayCacheSizeReloadKeepsProofsUsed(t *testing.T) {
	freshReplayCache(t) // other tests' entries would count against the small size
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	client := dpoptest.NewProver(t, jwa.ES256())
	c := jwtauthtest.Claims("reload-user")
	c["cnf"] = map[string]any{"jkt": client.Thumbprint}
	tok := k.Mint(t, c, nil)
	jwks := writeFile(t, "k.json", jwtauthtest.JWKS(t, k))
	load := func(size int) {
		startCaddy(t, itConfig{jwksFiles: []string{jwks}, storage: "storage memory",
			extra: "dpop {\n\t\t\treplay_cache_size " + strconv.Itoa(size) + "\n\t\t}"})
	}
	url := itBase + profilePath
	var used []string
	for _, size := range []int{1000, 5000, 300} {
		load(size)
		waitReplayCacheSize(t, size)
		for i, p := range used {
			r := doDPoP(t, newTester(t), "GET", url, "DPoP "+tok, p)
			if r.status != 401 || !strings.Contains(string(r.body), "already used") {
				t.Fatalf("replay of proof %d after a reload to replay_cache_size %d: %d %s", i, size, r.status, r.body)
			}
		}
		p := client.Proof(t, "GET", url, tok, time.Now(), nil, nil)
		if r := doDPoP(t, newTester(t), "GET", url, "DPoP "+tok, p); r.status != 200 {
			t.Fatalf("fresh proof with replay_cache_size %d: %d %s", size, r.status, r.body)
		}
		used = append(used, p)
	}
}

// TestDPoPManyKeyFloodSparesEstablishedKeys: a flood spread over many
// bound keys, each making fewer proofs than an established client, fills
// the replay cache; the established client, making a proof every few of
// the flood's requests, is accepted throughout, and no used proof (the
// client's, the flood's) is ever accepted again.
func TestDPoPManyKeyFloodSparesEstablishedKeys(t *testing.T) {
	const size = 30
	freshReplayCache(t)
	f := newDPoPFixture(t, fmt.Sprintf("dpop {\n\t\t\treplay_cache_size %d\n\t\t}", size), "")
	waitReplayCacheSize(t, size)
	url := itBase + profilePath
	now := time.Now()
	var used []string // accepted proofs of every key, with their tokens
	var usedTok []string
	var lastBody string
	spend := func(tok, p string) int {
		r := doDPoP(t, f.tc, "GET", url, "DPoP "+tok, p)
		lastBody = string(r.body)
		if r.status == 200 {
			used, usedTok = append(used, p), append(usedTok, tok)
		}
		return r.status
	}
	// the victim's last 72 s: a proof every 6 s
	for i := range 12 {
		if s := spend(f.bound, boundProof(t, f, "GET", f.htu, now.Add(time.Duration(i*6-72)*time.Second))); s != 200 {
			t.Fatalf("victim's history proof %d: %d", i, s)
		}
	}
	flooded := 0
	for i := range 60 {
		a := dpoptest.NewProver(t, jwa.ES256())
		c := jwtauthtest.Claims("flood-" + strconv.Itoa(i))
		c["cnf"] = map[string]any{"jkt": a.Thumbprint}
		atok := f.key.Mint(t, c, nil)
		iat := time.Now()
		if i%2 == 1 {
			iat = iat.Add(30 * time.Second) // dated ahead, within 5 s + the leeway
		}
		if spend(atok, a.Proof(t, "GET", f.htu, atok, iat, nil, nil)) == 200 {
			flooded++
		}
		if i%6 == 5 {
			if s := spend(f.bound, boundProof(t, f, "GET", f.htu, time.Now())); s != 200 {
				t.Fatalf("victim's fresh proof during the flood (after %d flood keys, %d accepted): %d %s", i+1, flooded, s, lastBody)
			}
		}
	}
	if flooded == 60 || replayCache.c.Len() < size {
		t.Fatalf("%d of the flood's 60 proofs were accepted, the cache holds %d: it was not filled", flooded, replayCache.c.Len())
	}
	for i, p := range used {
		r := doDPoP(t, f.tc, "GET", url, "DPoP "+usedTok[i], p)
		if r.status != 401 || !strings.Contains(string(r.body), codeInvalidDPoPProof) {
			t.Fatalf("replay of used proof %d: %d %s", i, r.status, r.body)
		}
	}
}

// TestDPoPOriginWithPathPrefix: behind a gateway that strips /gw, origin
// https://api.example.com/gw/ makes the proof's htu the gateway's URI:
// with the prefix it passes, without it or with another prefix it does
// not, and dot segments in the request cannot climb out of the prefix.
func TestDPoPOriginWithPathPrefix(t *testing.T) {
	f := newDPoPFixture(t, "dpop {\n\t\t\torigin https://API.example.com:443/gw/\n\t\t}", "")
	url := itBase + profilePath
	for htu, want := range map[string]int{
		"https://api.example.com/gw/api/workspace/account/profile":      200,
		"https://api.example.com/gw/./api/workspace/account/profile":    200,
		"https://api.example.com/api/workspace/account/profile":         401,
		"https://api.example.com/other/api/workspace/account/profile":   401,
		"https://api.example.com/gw/gw/api/workspace/account/profile":   401,
		"https://api.example.com/gwx/api/workspace/account/profile":     401,
		"https://api.example.com/gw/api/workspace/account/profile/":     401,
		"http://api.example.com/gw/api/workspace/account/profile":       401,
		"https://api.example.com/gw/../api/workspace/account/profile":   401,
		"https://api.example.com:8443/gw/api/workspace/account/profile": 401,
	} {
		r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, boundProof(t, f, "GET", htu, time.Now()))
		if r.status != want {
			t.Errorf("htu %s: %d, want %d (%s)", htu, r.status, want, r.body)
		}
	}
	// a request path with dot segments is resolved on its own, then put
	// after the prefix: a proof for the URI without the prefix never passes
	for _, target := range []string{"/../api/workspace/account/profile", "/x/../../api/workspace/account/profile"} {
		p := boundProof(t, f, "GET", "https://api.example.com/api/workspace/account/profile", time.Now())
		if r := rawRoundTrip(t, rawRequest("GET", target, itHost, "Authorization: DPoP "+f.bound, "DPoP: "+p)); r.status == 200 {
			t.Errorf("%s with a proof for the URI without the prefix: 200", target)
		}
	}
}

// TestDPoPOriginForms: origin may hold a path prefix, normalized; a
// query, a fragment, userinfo or another scheme is a config error.
func TestDPoPOriginForms(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com":              "https://api.example.com",
		"https://api.example.com/":             "https://api.example.com",
		"https://API.example.com:443/gw/":      "https://api.example.com/gw",
		"https://api.example.com/gw":           "https://api.example.com/gw",
		"https://api.example.com/a/./b/../gw/": "https://api.example.com/a/gw",
		"http://a.example:8080/g%77/x%2f":      "http://a.example:8080/gw/x%2F",
	} {
		got, err := normalizeOrigin(in)
		if err != nil || got != want {
			t.Errorf("origin %q: %q, %v; want %q", in, got, err, want)
		}
	}
	base := "jwks_file k.json\nissuer i\naudience a\n"
	for _, o := range []string{"https://api.example.com/gw?x=1", "https://api.example.com/gw?", "https://api.example.com/gw#f",
		"https://user@api.example.com/gw", "https://user:pw@api.example.com", "ftp://api.example.com/gw", "/gw", "https:///gw"} {
		if err := parseWorkspaceProfileErr(base + "dpop {\norigin " + o + "\n}"); err == nil || !strings.Contains(err.Error(), "origin") {
			t.Errorf("origin %q: err %v, want one naming origin", o, err)
		}
	}
}
