package authn

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
)

// TestDPoPRefusals: the refusals made before any proof is checked, with
// the challenge each DPoP mode answers them with (RFC 9449 §7.1, §7.2),
// for every kind of credential.
func TestDPoPRefusals(t *testing.T) {
	proofs, err := dpop.New(dpop.Config{Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	const bound = "eyJh.Ym91bmQ.c2ln"
	claims := map[string]string{goodJWT: aliceClaim, bound: `{"sub":"alice","cnf":{"jkt":"abc"}}`,
		"eyJh.Y25m.c2ln": `{"sub":"alice","cnf":"abc"}`, "eyJh.eDV0.c2ln": `{"sub":"alice","cnf":{"x5t#S256":"abc"}}`}
	dpopOnly := `DPoP realm="workspace", algs="ES256"`
	dpopErr := func(code, desc string) string {
		return `DPoP realm="workspace", error="` + code + `", error_description="` + desc + `", algs="ES256"`
	}
	bearerErr := func(desc string) string { return BearerChallenge("invalid_token", desc) }
	tests := []struct {
		name string
		mode DPoPMode
		hdr  []string
		want want
	}{
		{"nothing, allowed", DPoPAllowed, nil, want{401, "MissingToken", "No bearer token was sent.", BearerChallenge("", "") + ", " + dpopOnly}},
		{"nothing, required", DPoPRequired, nil, want{401, "MissingToken", DetailNoDPoPToken, dpopOnly}},
		{"nothing, off", DPoPOff, nil, want{401, "MissingToken", "No bearer token was sent.", BearerChallenge("", "")}},
		{"DPoP scheme, off", DPoPOff, []string{"Authorization", "DPoP " + goodJWT}, want{401, "MissingToken", "No bearer token was sent.", BearerChallenge("", "")}},
		{"Bearer, required", DPoPRequired, []string{"Authorization", "Bearer " + goodJWT}, want{401, "InvalidToken", DetailDPoPRequired, dpopErr("invalid_token", DetailDPoPRequired)}},
		{"X-Api-Key, required", DPoPRequired, []string{"X-Api-Key", "k"}, want{401, "InvalidToken", DetailDPoPRequired, dpopErr("invalid_token", DetailDPoPRequired)}},
		{"X-Api-Key, allowed", DPoPAllowed, []string{"X-Api-Key", "k"}, invalidAPIKey},
		{"wsk_ with DPoP scheme", DPoPAllowed, []string{"Authorization", "DPoP wsk_1"}, want{401, "InvalidToken", DetailInvalidAPIKey, dpopErr("invalid_token", DetailInvalidAPIKey)}},
		{"opaque with DPoP scheme", DPoPAllowed, []string{"Authorization", "DPoP opaque"}, want{401, "InvalidToken", DetailNotJWS, dpopErr("invalid_token", DetailNotJWS)}},
		{"bad JWT with DPoP scheme", DPoPAllowed, []string{"Authorization", "DPoP eyJh.YmFk.c2ln"}, want{401, "InvalidToken", "The token signature is invalid.", dpopErr("invalid_token", "The token signature is invalid.")}},
		{"unbound with DPoP scheme", DPoPAllowed, []string{"Authorization", "DPoP " + goodJWT}, want{401, "InvalidToken", DetailUnboundAsDPoP, dpopErr("invalid_token", DetailUnboundAsDPoP)}},
		{"bound as Bearer", DPoPAllowed, []string{"Authorization", "Bearer " + bound}, want{401, "InvalidToken", DetailBoundAsBearer, dpopErr("invalid_token", DetailBoundAsBearer)}},
		{"bound as Bearer, off", DPoPOff, []string{"Authorization", "Bearer " + bound}, want{401, "InvalidToken", DetailBoundNoDPoP, bearerErr(DetailBoundNoDPoP)}},
		{"cnf not an object", DPoPAllowed, []string{"Authorization", "Bearer eyJh.Y25m.c2ln"}, want{401, "InvalidToken", DetailCnfMalformed, bearerErr(DetailCnfMalformed)}},
		{"cnf of another method", DPoPAllowed, []string{"Authorization", "Bearer eyJh.eDV0.c2ln"}, want{401, "InvalidToken", DetailCnfOther, bearerErr(DetailCnfOther)}},
		{"bound without a proof", DPoPAllowed, []string{"Authorization", "DPoP " + bound}, want{401, CodeInvalidDPoPProof, "The request has no DPoP proof.", dpopErr("invalid_dpop_proof", "The request has no DPoP proof.")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{JWT: &fakeVerifier{claims: claims}, ServiceAccount: defaultSA}
			if tt.mode != DPoPOff {
				cfg.DPoP = DPoP{Mode: tt.mode, Proofs: proofs, RequestTarget: func(r *http.Request) (string, string) { return r.Method, "http://example.com/" }}
			}
			_, ref := New(cfg).Authenticate(newRequest("/", tt.hdr...))
			check(t, ref, tt.want)
		})
	}
}

// TestBackendChallenge: a backend's 401 is told in the scheme the client
// used, and in Bearer when DPoP is off.
func TestBackendChallenge(t *testing.T) {
	on := NewChallenges(DPoPAllowed, []string{"ES256"})
	off := NewChallenges(DPoPOff, nil)
	if got := on.BackendChallenge("dpop tok", "no"); got != `DPoP realm="workspace", error="invalid_token", error_description="no", algs="ES256"` {
		t.Error(got)
	}
	for _, c := range []struct {
		ch   Challenges
		auth string
	}{{on, "Bearer tok"}, {off, "DPoP tok"}, {on, ""}} {
		if got := c.ch.BackendChallenge(c.auth, "no"); got != `Bearer realm="workspace", error="invalid_token", error_description="no"` {
			t.Errorf("%q: %s", c.auth, got)
		}
	}
}

// failingRecord is a record of used proofs that cannot answer.
type failingRecord struct{}

func (failingRecord) UseProof(context.Context, string, [32]byte, time.Time) (bool, error) {
	return false, errors.New("connection refused")
}

// TestDPoPProofRecordDownIs503: a valid proof that cannot be checked for
// replay, the shared record being down, gets the answer of a store being
// down (503 StorageUnavailable, no challenge), never a 401 or an accept.
func TestDPoPProofRecordDownIs503(t *testing.T) {
	client := dpoptest.NewProver(t, jwa.ES256())
	proofs, err := dpop.New(dpop.Config{Shared: failingRecord{}})
	if err != nil {
		t.Fatal(err)
	}
	const tok = "eyJh.Ym91bmQ.c2ln"
	claims := map[string]string{tok: `{"sub":"alice","cnf":{"jkt":"` + client.Thumbprint + `"}}`}
	a := New(Config{JWT: &fakeVerifier{claims: claims}, ServiceAccount: defaultSA,
		DPoP: DPoP{Mode: DPoPAllowed, Proofs: proofs, RequestTarget: func(r *http.Request) (string, string) { return r.Method, "http://example.com/" }}})
	proof := client.Proof(t, "GET", "http://example.com/", tok, time.Now(), nil, nil)
	_, ref := a.Authenticate(newRequest("/", "Authorization", "DPoP "+tok, "DPoP", proof))
	check(t, ref, want{503, CodeStorageUnavailable, ErrProofRecordUnavailable.Desc, ""})
}
