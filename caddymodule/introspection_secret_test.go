package caddymodule

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestIntrospectionSecretPlaceholder: client_secret written as {env.X} or
// {file.X} is replaced at provision: Caddy's GET /config/ shows the
// placeholder and never the secret, and the endpoint receives the
// replaced secret, form-encoded before Basic (a secret with : / + % and a
// space arrives whole).
func TestIntrospectionSecretPlaceholder(t *testing.T) {
	const secret = "pl:ace/hold+er% s3cr3t"
	t.Setenv("TEST_INTROSPECTION_SECRET", secret)
	file := writeFile(t, "secret.txt", []byte(secret+"\n"))
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	for name, placeholder := range map[string]string{"env": "{env.TEST_INTROSPECTION_SECRET}", "file": "{file." + file + "}"} {
		t.Run(name, func(t *testing.T) {
			e := newIntrospectionEndpoint(t)
			tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
				storage: "storage memory", extra: introspectionBlock(e, placeholder)})
			resp, err := tc.Client.Get(itAdmin + "/config/")
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, leak := range []string{secret, url.QueryEscape(secret), "s3cr3t"} {
				if strings.Contains(string(cfg), leak) {
					t.Fatalf("GET /config/ shows the secret (%q)", leak)
				}
			}
			if !strings.Contains(string(cfg), strings.ReplaceAll(placeholder, "/", `\/`)) && !strings.Contains(string(cfg), placeholder) {
				t.Fatalf("GET /config/ does not show the placeholder: %s", cfg)
			}
			tok := opaqueToken()
			e.active(tok, `,"sub":"intro-secret"`)
			if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			got := e.receivedSecrets()
			if len(got) != 1 {
				t.Fatalf("%d calls", len(got))
			}
			if dec, err := url.QueryUnescape(got[0]); err != nil || dec != secret {
				t.Fatalf("the endpoint got password %q (decoded %q, %v)", got[0], dec, fmt.Sprint(err))
			}
		})
	}
}
