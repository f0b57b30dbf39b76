package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// DPoP proofs spent in the record the nodes share (the dpop_proofs table
// of a PostgreSQL store), through a real Caddy on the real server.

const detailAlreadyUsed = "The DPoP proof was already used; make a new one for each request."

// dpopProofRows counts the rows of schema's dpop_proofs, 0 when the
// table is not there (yet).
func dpopProofRows(t *testing.T, dsn, schema string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	table := pgx.Identifier{schema}.Sanitize() + ".dpop_proofs"
	var exists bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
		return 0
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// spendElsewhere writes the row another node writes when it accepts the
// proof of key thumbprint for htu with jti: its replay key, the SHA-256
// of the thumbprint, the normalized htu and the jti.
func spendElsewhere(t *testing.T, dsn, schema, thumbprint, htu, jti string) {
	t.Helper()
	n, ok := dpop.NormalizeHTU(htu)
	if !ok {
		t.Fatalf("htu %q", htu)
	}
	key := sha256.Sum256([]byte(thumbprint + "\x00" + n + "\x00" + jti))
	pgExec(t, dsn, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".dpop_proofs (jkt, proof_hash, expires) VALUES ($1, $2, now() + interval '5 minutes')",
		thumbprint, key[:])
}

// wantProofRecordDown checks the answer of a proof the shared record
// could not check: the 503 of a store being down, byte for byte, with
// Retry-After and no challenge.
func wantProofRecordDown(t *testing.T, what string, r itResponse) {
	t.Helper()
	want, _ := profile.Failed(profile.StorageUnavailableItem()).AppendJSON(nil)
	if r.status != 503 || string(r.body) != string(want) {
		t.Fatalf("%s: %d %s\nwant 503 %s", what, r.status, r.body, want)
	}
	h := r.header
	if h.Get("Retry-After") != "5" || h.Get("WWW-Authenticate") != "" || h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("%s: headers %v", what, h)
	}
}

// sharedChecks is the count of shared checks of each result so far.
func sharedChecks() map[string]float64 {
	m := map[string]float64{}
	for _, r := range []string{dpopSharedFresh, dpopSharedReplayed, dpopSharedFailed} {
		m[r] = testutil.ToFloat64(metricDPoPSharedChecks.WithLabelValues(r))
	}
	return m
}

// wantSharedChecks checks the shared checks counted since before, by
// result; a negative count is "at least" its opposite.
func wantSharedChecks(t *testing.T, before map[string]float64, want map[string]float64) {
	t.Helper()
	now := sharedChecks()
	for r, n := range want {
		got := now[r] - before[r]
		if (n >= 0 && got != n) || (n < 0 && got < -n) {
			t.Errorf("%s checks counted: %v, want %v", r, got, n)
		}
	}
	for _, c := range []prometheus.Collector{metricDPoPSharedChecks, metricDPoPSharedSeconds} {
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Errorf("metric lint: %v %v", problems, err)
		}
	}
}

// TestDPoPProofUsedOnAnotherNodeRefused: on a route whose profiles are in
// PostgreSQL, a fresh proof passes and leaves its row; a proof whose row
// another node wrote is refused as already used, with the exact problem
// and challenge of a replay on this node.
func TestDPoPProofUsedOnAnotherNodeRefused(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_dpop_shared")
	f := newDPoPFixtureOn(t, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s", schema), "", "")
	url := itBase + profilePath
	before := sharedChecks()
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)); r.status != 200 {
		t.Fatalf("a fresh proof: %d %s", r.status, r.body)
	}
	if n := dpopProofRows(t, dsn, schema); n != 1 {
		t.Fatalf("%d rows after one accepted proof, want 1", n)
	}
	spendElsewhere(t, dsn, schema, f.client.Thumbprint, f.htu, "used-on-node-a")
	r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", map[string]any{"jti": "used-on-node-a"}))
	wantRefusal(t, r, codeInvalidDPoPProof, detailAlreadyUsed, dpopChallengeFor("invalid_dpop_proof", detailAlreadyUsed))
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", map[string]any{"jti": "never-used"})); r.status != 200 {
		t.Fatalf("another jti of the same key: %d %s", r.status, r.body)
	}
	wantSharedChecks(t, before, map[string]float64{dpopSharedFresh: 2, dpopSharedReplayed: 1, dpopSharedFailed: 0})
}

// TestDPoPSharedCheckImpossibleIs503: on a route whose API keys are in
// PostgreSQL (its profiles in memory, so only the proof check needs the
// database), a proof that cannot be checked against the shared record,
// the store not open yet or the database cut off, gets 503
// StorageUnavailable, never a 200; once the database answers, fresh
// proofs pass again.
func TestDPoPSharedCheckImpossibleIs503(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_dpop_down")
	proxy, proxied := pgtest.NewProxyFor(t, dsn)
	proxy.Cut() // the store cannot open
	f := newDPoPFixtureOn(t, "storage memory", fmt.Sprintf("api_keys {\n\t\t\tstore postgres %q schema %s timeout 1s\n\t\t}", proxied, schema), "")
	url := itBase + profilePath
	before := sharedChecks()
	for i := range 3 {
		wantProofRecordDown(t, fmt.Sprintf("store not open, request %d", i), doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)))
	}
	proxy.Restore()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil))
		if r.status == 200 {
			break
		}
		wantProofRecordDown(t, "while the store opens", r)
		if time.Now().After(deadline) {
			t.Fatal("no 200 within 15 s of the database coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := dpopProofRows(t, dsn, schema); n != 1 {
		t.Fatalf("%d rows after one accepted proof, want 1", n)
	}
	proxy.Cut()
	for i := range 3 {
		wantProofRecordDown(t, fmt.Sprintf("database cut, request %d", i), doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)))
	}
	// a bearer token needs no proof, and the profiles are in memory
	if r := do(t, f.tc.Client, "GET", url, bearer(f.unbound), ""); r.status != 200 {
		t.Fatalf("a bearer token with the database cut: %d %s", r.status, r.body)
	}
	wantSharedChecks(t, before, map[string]float64{dpopSharedFresh: 1, dpopSharedReplayed: 0, dpopSharedFailed: -6})
}

// TestDPoPSharedInUpstreamMode: in upstream mode, a route whose API keys
// are in PostgreSQL spends proofs there too: a fresh one reaches the
// backend and leaves its row, one another node used is refused before the
// backend is called.
func TestDPoPSharedInUpstreamMode(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_dpop_upstream")
	u := startDPoPUpstreamWith(t, fmt.Sprintf("api_keys {\n\t\t\tstore postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s\n\t\t}", schema))
	url := itBase + profilePath
	htu := itSite + profilePath
	if r := doDPoP(t, u.tc, "GET", url, "DPoP "+u.tok, u.client.Proof(t, "GET", htu, u.tok, time.Now(), nil, nil)); r.status != 200 {
		t.Fatalf("a fresh proof: %d %s", r.status, r.body)
	}
	if n := dpopProofRows(t, dsn, schema); n != 1 {
		t.Fatalf("%d rows after one accepted proof, want 1", n)
	}
	calls := len(u.backend.Requests())
	spendElsewhere(t, dsn, schema, u.client.Thumbprint, htu, "used-on-node-a")
	r := doDPoP(t, u.tc, "GET", url, "DPoP "+u.tok, u.client.Proof(t, "GET", htu, u.tok, time.Now(), nil, map[string]any{"jti": "used-on-node-a"}))
	wantRefusal(t, r, codeInvalidDPoPProof, detailAlreadyUsed, dpopChallengeFor("invalid_dpop_proof", detailAlreadyUsed))
	if n := len(u.backend.Requests()); n != calls {
		t.Fatalf("the backend was called for a replayed proof (%d calls, was %d)", n, calls)
	}
}

// TestDPoPSharedRecordFollowsReload: a reload that moves the route to
// another PostgreSQL schema spends proofs in the new one, once the old
// store is closed: the verifier never keeps the old config's pool.
func TestDPoPSharedRecordFollowsReload(t *testing.T) {
	dsn, first := pgSchema(t, "wp_dpop_reload_a")
	second := first + "_b"
	t.Cleanup(func() { dropSchema(dsn, second) })
	storage := func(schema string) string {
		return fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s", schema)
	}
	f := newDPoPFixtureOn(t, storage(first), "", "")
	url := itBase + profilePath
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)); r.status != 200 {
		t.Fatalf("before the reload: %d %s", r.status, r.body)
	}
	jwks := writeFile(t, "k.json", jwtauthtest.JWKS(t, f.key))
	startCaddy(t, itConfig{jwksFiles: []string{jwks}, storage: storage(second)})
	for i := range 3 {
		if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)); r.status != 200 {
			t.Fatalf("after the reload, request %d: %d %s", i, r.status, r.body)
		}
	}
	if a, b := dpopProofRows(t, dsn, first), dpopProofRows(t, dsn, second); a != 1 || b != 3 {
		t.Fatalf("rows: %d in the old schema, %d in the new; want 1 and 3", a, b)
	}
}

// TestDPoPSharedPrefersTheProfileStore: a route with its profiles in one
// PostgreSQL schema and its API keys in another spends proofs in the
// profiles' schema.
func TestDPoPSharedPrefersTheProfileStore(t *testing.T) {
	dsn, profiles := pgSchema(t, "wp_dpop_profiles")
	keys := profiles + "_keys"
	t.Cleanup(func() { dropSchema(dsn, keys) })
	f := newDPoPFixtureOn(t, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s", profiles),
		fmt.Sprintf("api_keys {\n\t\t\tstore postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s\n\t\t}", keys), "")
	if r := doDPoP(t, f.tc, "GET", itBase+profilePath, "DPoP "+f.bound, f.proof(t, "GET", nil)); r.status != 200 {
		t.Fatalf("a fresh proof: %d %s", r.status, r.body)
	}
	if p, k := dpopProofRows(t, dsn, profiles), dpopProofRows(t, dsn, keys); p != 1 || k != 0 {
		t.Fatalf("rows: %d in the profiles' schema, %d in the keys'; want 1 and 0", p, k)
	}
}
