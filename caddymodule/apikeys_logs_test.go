package caddymodule

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestAPIKeyInNoLogLine (G09): with every log at DEBUG and the access log
// of Caddyfile.example, no line holds a key (valid, a service account's,
// unknown, in the key header, in Bearer, in access_token or in another
// query parameter) nor its secret part; the access log names a key's
// caller by its owner.
func TestAPIKeyInNoLogLine(t *testing.T) {
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
		exclude http.log.access
	}
}
%s {
	%s
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		storage memory
		create_missing
		api_keys
	}
}
`, itAdminPort, itPort, moduleLog, itSite, exampleLogBlock(t, accessLog), writeFile(t, "k.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience))
	client := newTester(t).Client
	ks := liveKeyStore(t)
	user, _ := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
	service, _ := issueKey(t, ks, "robot", apikey.KindService, nil)
	unknown, _, _ := apikey.Generate(ks.Prefix)
	url := itBase + profilePath
	keys := []string{user, service, unknown}
	for _, key := range keys {
		do(t, client, "GET", url, map[string]string{"X-Api-Key": key}, "")
		do(t, client, "GET", url, bearer(key), "")
		do(t, client, "GET", url+"?access_token="+key, nil, "")
		do(t, client, "GET", url+"?key="+key, map[string]string{"X-Api-Key": key}, "")
		do(t, client, "PUT", url, map[string]string{"X-Api-Key": key, "Content-Type": "application/json"}, `{"UserName":"keyowner"}`)
	}
	// a host no site names is logged by the default logger, which has no
	// filter: the examples keep access lines out of it, as this config does
	for _, example := range []string{"Caddyfile.example", "Caddyfile.production"} {
		raw, _ := os.ReadFile(filepath.Join("..", example))
		if !bytes.Contains(raw, []byte("\tlog default {\n\t\texclude http.log.access\n\t}")) {
			t.Errorf("%s does not keep access lines out of the default logger", example)
		}
	}
	unmapped := strings.Replace(url, "localhost", "127.0.0.1", 1)
	for _, key := range keys {
		do(t, client, "GET", unmapped+"?access_token="+key, map[string]string{"X-Api-Key": key}, "")
	}
	module, _ := os.ReadFile(moduleLog)
	access, _ := os.ReadFile(accessLog)
	if !bytes.Contains(module, []byte(`"level":"debug"`)) || !bytes.Contains(access, []byte(`"key-owner"`)) {
		t.Fatalf("no debug line, or no access line naming the key's owner: the scan would check nothing\n%.2000s\n%.2000s", module, access)
	}
	for name, data := range map[string][]byte{"module log": module, "access log": access} {
		for n, line := range bytes.Split(data, []byte("\n")) {
			for _, key := range keys {
				// the secret's own alphabet holds '_': it is the key's tail
				secret := key[len(key)-apikey.SecretLen:]
				if bytes.Contains(line, []byte(key)) || bytes.Contains(line, []byte(secret)) {
					t.Errorf("%s line %d holds a key: %.400s", name, n+1, line)
				}
			}
		}
	}
}

// TestAPIKeyMetrics: each verification is counted by its outcome, and
// the counter passes Prometheus's lint.
func TestAPIKeyMetrics(t *testing.T) {
	tc, _ := startKeyedSite(t, "storage memory\n\t\tcreate_missing\n\t\tapi_keys")
	ks := liveKeyStore(t)
	user, _ := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
	service, _ := issueKey(t, ks, "robot", apikey.KindService, nil)
	count := func(o string) float64 { return testutil.ToFloat64(metricKeyVerifications.WithLabelValues(o)) }
	before := map[string]float64{}
	for _, o := range []string{keyValidUser, keyServiceRefused, keyInvalid} {
		before[o] = count(o)
	}
	for _, key := range []string{user, user, service, "wsk_unknown"} {
		do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": key}, "")
	}
	for o, want := range map[string]float64{keyValidUser: 2, keyServiceRefused: 1, keyInvalid: 1} {
		if got := count(o) - before[o]; got != want {
			t.Errorf("%s: %v, want %v", o, got, want)
		}
	}
	if n := testutil.ToFloat64(metricKeyCache.WithLabelValues("miss")) + testutil.ToFloat64(metricKeyCache.WithLabelValues("hit")); n == 0 {
		t.Fatal("no cache lookup counted")
	}
	for _, c := range []prometheus.Collector{metricKeyVerifications, metricKeyCache, metricKeyStoreReads} {
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Fatalf("lint: %v %v", problems, err)
		}
	}
}
