package caddymodule

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/oidcprovidertest"
)

// TestOIDCProviderDPoPBoundOpaqueToken: an opaque token that oidc-provider
// bound to the client's key (a DPoP proof at its token endpoint:
// token_type DPoP, cnf.jkt in the introspection answer) reads and writes
// its owner's profile through a real Caddy with the DPoP scheme and a
// fresh proof of that key; a proof of another key, and the token sent as
// Bearer (with or without a proof), are the exact 401s. Both with plain
// and with signed answers (the endpoint and key set found by discovery).
func TestOIDCProviderDPoPBoundOpaqueToken(t *testing.T) {
	p := startOIDCProvider(t)
	htu := itSite + profilePath
	url := itBase + profilePath
	const (
		asBearer = "The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."
		otherKey = "The token is bound to another key than the one that signed the DPoP proof."
		noProof  = "The request has no DPoP proof."
	)
	for _, response := range []string{"json", "jwt"} {
		t.Run("response "+response, func(t *testing.T) {
			tc := startCaddyfile(t, oidcRoute{keys: "discovery " + p.Issuer(), edge: oidcEdgeBasic, response: response}.site(p))
			waitForKeys(t, tc)
			invalidToken := func(r itResponse, desc string) {
				t.Helper()
				wantRefusal(t, r, "InvalidToken", desc, dpopChallengeFor("invalid_token", desc))
			}

			client := dpoptest.NewProver(t, jwa.ES256())
			tr, err := p.Token(oidcApp.ID, oidcApp.Secret, oidcOpaqueAPI,
				oidcprovidertest.WithDPoP(client.Proof(t, http.MethodPost, p.TokenEndpoint(), "", time.Now(), nil, nil)))
			if err != nil {
				t.Fatal(err)
			}
			tok := tr.AccessToken
			if tr.TokenType != "DPoP" || strings.Count(tok, ".") == 2 {
				t.Fatalf("oidc-provider gave token_type %q, a JWS: %v", tr.TokenType, strings.Count(tok, ".") == 2)
			}
			// What the module is told of the token: bound to client's key.
			res, err := p.Introspect(tok, oidcEdgeBasic.ID, oidcEdgeBasic.Secret)
			if err != nil || res.Status != 200 || !bytes.Contains(res.Body, []byte(`"cnf":{"jkt":"`+client.Thumbprint+`"}`)) {
				t.Fatalf("introspection of the bound token: %v %d %s", err, res.Status, res.Body)
			}

			// the token sent as Bearer, without a proof and with one
			// (the first request: the answer is not cached yet)
			invalidToken(doDPoP(t, tc, "GET", url, "Bearer "+tok), asBearer)
			invalidToken(doDPoP(t, tc, "GET", url, "Bearer "+tok, client.Proof(t, "GET", htu, tok, time.Now(), nil, nil)), asBearer)

			r := doDPoP(t, tc, "GET", url, "DPoP "+tok, client.Proof(t, "GET", htu, tok, time.Now(), nil, nil))
			if r.status != 200 || !bytes.Contains(r.body, []byte(`"UserId":"app-user-1"`)) {
				t.Fatalf("GET with its proof: %d %s", r.status, r.body)
			}
			if m := r.header.Get("X-Auth-Method"); m != "introspection" {
				t.Fatalf("method placeholder %q, want introspection", m)
			}
			r = do(t, tc.Client, "PUT", url, map[string]string{"Authorization": "DPoP " + tok, "Content-Type": "application/json",
				"DPoP": client.Proof(t, "PUT", htu, tok, time.Now(), nil, nil)}, `{"FirstName":"Dagny"}`)
			if r.status != 200 || !bytes.Contains(r.body, []byte(`"FirstName":"Dagny"`)) {
				t.Fatalf("PUT with its proof: %d %s", r.status, r.body)
			}

			other := dpoptest.NewProver(t, jwa.ES256())
			invalidToken(doDPoP(t, tc, "GET", url, "DPoP "+tok, other.Proof(t, "GET", htu, tok, time.Now(), nil, nil)), otherKey)
			// and once its answer is cached, the same
			invalidToken(doDPoP(t, tc, "GET", url, "Bearer "+tok), asBearer)
			wantRefusal(t, doDPoP(t, tc, "GET", url, "DPoP "+tok), codeInvalidDPoPProof, noProof, dpopChallengeFor("invalid_dpop_proof", noProof))
		})
	}
}
