package caddymodule

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestIntrospectionLogsHoldNoSecret: with every log at DEBUG and an
// access log, no line holds an opaque token (active, inactive, or one
// whose call failed), the client secret or a client assertion; a failed
// call's line names the token by a short hash prefix only.
func TestIntrospectionLogsHoldNoSecret(t *testing.T) {
	const secret = "n0t-in-any-l0g"
	t.Run("client_secret_post", func(t *testing.T) {
		logsHoldNoSecret(t, "client_secret "+secret+"\n\t\t\tauth_method client_secret_post", secret)
	})
	t.Run("private_key_jwt", func(t *testing.T) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		file := writeFile(t, "client.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		logsHoldNoSecret(t, "client_key "+file+"\n\t\t\tauth_method private_key_jwt", "")
	})
}

// logsHoldNoSecret runs the requests of TestIntrospectionLogsHoldNoSecret
// with the client authentication lines auth, and scans every log line for
// the tokens, secret and whatever the endpoint received as a credential.
func logsHoldNoSecret(t *testing.T, auth, secret string) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	dir := t.TempDir()
	moduleLog, accessLog := filepath.Join(dir, "module.log"), filepath.Join(dir, "access.log")
	startCaddyfile(t, fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	log default {
		output file %s
		level DEBUG
	}
}
%s {
	log {
		output file %s
	}
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		storage memory
		create_missing
		introspection %s/introspect {
			client_id edge
			%s
		}
	}
}
`, itAdminPort, itPort, moduleLog, itSite, accessLog, writeFile(t, "k.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience, e.URL, auth))
	client := newTester(t).Client
	active, inactive, failing := opaqueToken()+"-active", opaqueToken()+"-inactive", opaqueToken()+"-failing"
	e.active(active, `,"sub":"intro-logs"`)
	for _, tok := range []string{active, inactive} {
		do(t, client, "GET", itBase+profilePath, bearer(tok), "")
	}
	e.failing.Store(true)
	if r := do(t, client, "GET", itBase+profilePath, bearer(failing), ""); r.status != 503 {
		t.Fatalf("failing: %d %s", r.status, r.body)
	}
	module, _ := os.ReadFile(moduleLog)
	access, _ := os.ReadFile(accessLog)
	if !bytes.Contains(module, []byte(`"token_sha256"`)) || !bytes.Contains(module, []byte(`"level":"debug"`)) {
		t.Fatalf("the module log has no failed call or no debug line: the scan would check nothing\n%.3000s", module)
	}
	sent := e.receivedForms()
	if len(sent) == 0 {
		t.Fatal("the endpoint received no client credential: the scan would check nothing")
	}
	for name, data := range map[string][]byte{"module log": module, "access log": access} {
		for n, line := range bytes.Split(data, []byte("\n")) {
			for _, s := range append([]string{active, inactive, failing, secret, "opaque-"}, sent...) {
				if s != "" && bytes.Contains(line, []byte(s)) {
					t.Errorf("%s line %d holds %q: %.300s", name, n+1, s, line)
				}
			}
		}
	}
}
