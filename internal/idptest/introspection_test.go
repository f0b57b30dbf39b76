package idptest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// introspect asks p's introspection endpoint about tok as clientID with
// secret (HTTP Basic, form-encoded as RFC 6749 says).
func introspect(t *testing.T, p *Provider, tok, clientID, secret string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.IntrospectionEndpoint, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var answer map[string]any
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &answer); err != nil {
			t.Fatalf("answer %q: %v", body, err)
		}
	}
	return resp.StatusCode, answer
}

// TestZitadelOpaqueTokensIntrospected: op's opaque tokens, a user's and a
// client-credentials one, are answered by op's introspection endpoint with
// the records the storage keeps; a client registered with a key only is
// never let in by an empty secret; a token op did not issue is inactive.
func TestZitadelOpaqueTokensIntrospected(t *testing.T) {
	rs := Client{ID: "rs", Secret: "rs-secret"}
	keyOnly := Client{ID: "rs-key", PublicKey: mustKey(t).priv.Public(), KeyID: "k1"}
	web := Client{ID: "web", Secret: "web-secret", Audience: []string{"api"}, Opaque: true}
	svc := Client{ID: "svc", Secret: "svc-secret", Audience: []string{"api"}, Opaque: true, Claims: map[string]any{"UserType": 2}}
	p := StartTLS(t, jose.ES256, rs, keyOnly, web, svc)

	user := p.MustUserToken(t, web, User{Subject: "u-1", Claims: map[string]any{"email": "u@example.com"}})
	status, a := introspect(t, p, user, rs.ID, rs.Secret)
	if status != 200 || a["active"] != true || a["sub"] != "u-1" || a["client_id"] != "web" || a["iss"] != p.Issuer ||
		a["email"] != "u@example.com" || a["aud"] == nil || a["exp"] == nil || a["UserType"] != nil {
		t.Fatalf("user token: %d %v", status, a)
	}
	status, a = introspect(t, p, p.MustToken(t, svc), rs.ID, rs.Secret)
	if status != 200 || a["active"] != true || a["sub"] != "svc" || a["UserType"] != float64(2) {
		t.Fatalf("service token: %d %v", status, a)
	}
	if status, a = introspect(t, p, "not-a-token", rs.ID, rs.Secret); status != 200 || a["active"] != false {
		t.Fatalf("unknown token: %d %v", status, a)
	}
	if status, _ = introspect(t, p, user, keyOnly.ID, ""); status != http.StatusUnauthorized {
		t.Fatalf("a key-only client with an empty secret: %d, want 401", status)
	}
	if status, _ = introspect(t, p, user, rs.ID, "wrong"); status != http.StatusUnauthorized {
		t.Fatalf("a wrong secret: %d, want 401", status)
	}
}

func mustKey(t *testing.T) *signingKey {
	k, err := newSigningKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
