package authn

import (
	"context"
	"net/http"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// fakeKeys answers with the owner it holds for a key, else the refusal
// err (ErrInvalidAPIKey when nil), and counts what it was asked.
type fakeKeys struct {
	owners map[string]KeyOwner
	err    *jwtauth.Error
	calls  []string
}

func (f *fakeKeys) VerifyKey(_ context.Context, key string) (KeyOwner, *jwtauth.Error) {
	f.calls = append(f.calls, key)
	if o, ok := f.owners[key]; ok {
		return o, nil
	}
	if f.err != nil {
		return KeyOwner{}, f.err
	}
	return KeyOwner{}, ErrInvalidAPIKey
}

// TestAPIKeyPolicy: the decision on an API key. A user's key acts as its
// owner with the subject claim as its only claim and the key's id; a
// service account's key is refused with the 403 of every service account
// before anything else happens; every bad key gets one 401; a store that
// cannot answer is a 503 without a challenge, never a 401; the DPoP
// scheme, or dpop required, refuses any key without asking the store.
func TestAPIKeyPolicy(t *testing.T) {
	const user, service, odd = "wsk_user", "wsk_service", "wsk_odd"
	owners := map[string]KeyOwner{
		user:    {ID: "id-user", Subject: "alice"},
		service: {ID: "id-svc", Subject: "robot", Service: true},
		odd:     {ID: "id-odd", Subject: " alice"},
	}
	sa := want{403, CodeServiceAccountForbidden, profile.ServiceAccountDetail, ""}
	unavailable := want{503, "StorageUnavailable", ErrKeyStoreUnavailable.Desc, ""}
	dpopErr := `DPoP realm="workspace", error="invalid_token", error_description="` + DetailInvalidAPIKey + `", algs="ES256"`
	required := `DPoP realm="workspace", error="invalid_token", error_description="` + DetailDPoPRequired + `", algs="ES256"`
	tests := []struct {
		name     string
		target   string
		hdr      []string
		mode     DPoPMode
		storeErr *jwtauth.Error
		want     want
		asked    bool   // whether the store was asked
		subject  string // of the principal, refused or not
	}{
		{name: "user key in the header", hdr: []string{"X-Api-Key", user}, asked: true, subject: "alice"},
		{name: "user key in Bearer", hdr: []string{"Authorization", "Bearer " + user}, asked: true, subject: "alice"},
		{name: "user key in access_token", target: "/?access_token=" + user, asked: true, subject: "alice"},
		{name: "G07 service key", hdr: []string{"X-Api-Key", service}, want: sa, asked: true, subject: "robot"},
		{name: "G07 service key in Bearer", hdr: []string{"Authorization", "Bearer " + service}, want: sa, asked: true, subject: "robot"},
		{name: "unknown key", hdr: []string{"X-Api-Key", "wsk_unknown"}, want: invalidAPIKey, asked: true},
		{name: "value without the prefix in the header", hdr: []string{"X-Api-Key", "other"}, want: invalidAPIKey, asked: true},
		{name: "owner that is no usable subject", hdr: []string{"X-Api-Key", odd}, want: invalidAPIKey, asked: true},
		{name: "store down", hdr: []string{"X-Api-Key", "wsk_unknown"}, storeErr: ErrKeyStoreUnavailable, want: unavailable, asked: true},
		{name: "store down, Bearer", hdr: []string{"Authorization", "Bearer wsk_unknown"}, storeErr: ErrKeyStoreUnavailable, want: unavailable, asked: true},
		{name: "user key with the DPoP scheme", hdr: []string{"Authorization", "DPoP " + user}, mode: DPoPAllowed,
			want: want{401, "InvalidToken", DetailInvalidAPIKey, dpopErr}},
		{name: "user key under dpop required", hdr: []string{"X-Api-Key", user}, mode: DPoPRequired,
			want: want{401, "InvalidToken", DetailDPoPRequired, required}},
		{name: "user key in Bearer under dpop required", hdr: []string{"Authorization", "Bearer " + user}, mode: DPoPRequired,
			want: want{401, "InvalidToken", DetailDPoPRequired, required}},
		{name: "key and Bearer", hdr: []string{"X-Api-Key", user, "Authorization", "Bearer " + user}, want: twoCredentials},
		{name: "key twice", hdr: []string{"X-Api-Key", user, "X-Api-Key", user}, want: twoCredentials},
	}
	proofs, err := dpop.New(dpop.Config{Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := &fakeKeys{owners: owners, err: tt.storeErr}
			jwt := &fakeVerifier{}
			cfg := Config{JWT: jwt, APIKeys: keys, AllowQuery: true, ServiceAccount: defaultSA}
			if tt.mode != DPoPOff {
				cfg.DPoP = DPoP{Mode: tt.mode, Proofs: proofs, RequestTarget: func(r *http.Request) (string, string) { return r.Method, "http://example.com/" }}
			}
			target := tt.target
			if target == "" {
				target = "/"
			}
			p, ref := New(cfg).Authenticate(newRequest(target, tt.hdr...))
			check(t, ref, tt.want)
			if asked := len(keys.calls) > 0; asked != tt.asked || len(keys.calls) > 1 {
				t.Fatalf("the key store was asked %v", keys.calls)
			}
			if len(jwt.calls) != 0 {
				t.Fatalf("a key reached the JWT verifier: %v", jwt.calls)
			}
			if p.Subject != tt.subject {
				t.Fatalf("principal subject %q, want %q", p.Subject, tt.subject)
			}
			if ref != nil && tt.want.code != CodeServiceAccountForbidden {
				return
			}
			wantID := map[string]string{"alice": "id-user", "robot": "id-svc"}[tt.subject]
			if p.Method != MethodAPIKey || p.KeyID != wantID {
				t.Fatalf("principal %+v", p)
			}
			if len(p.Claims) != 1 || string(p.Claims["sub"]) != `"`+tt.subject+`"` {
				t.Fatalf("claims %v, want only the subject", p.Claims)
			}
			if isSA := ref != nil; isSA != (p.Kind == PrincipalServiceAccount) {
				t.Fatalf("principal kind %d", p.Kind)
			}
		})
	}
}

// TestAPIKeyRecognitionConfigured: the header and the prefix are the
// configured ones: a key in another header is no credential, a value with
// the default prefix is an opaque token when another prefix is set, the
// refusal of two credentials names the configured header, and the
// subject claim is the configured one.
func TestAPIKeyRecognitionConfigured(t *testing.T) {
	keys := &fakeKeys{owners: map[string]KeyOwner{"acme_1": {ID: "k1", Subject: "alice"}}}
	a := New(Config{APIKeys: keys, APIKeyHeader: "x-acme-key", APIKeyPrefix: "acme_", Subject: "oid", ServiceAccount: defaultSA})
	for _, tt := range []struct {
		name string
		hdr  []string
		want want
	}{
		{"configured header", []string{"X-Acme-Key", "acme_1"}, want{}},
		{"configured prefix in Bearer", []string{"Authorization", "Bearer acme_1"}, want{}},
		{"default header", []string{"X-Api-Key", "acme_1"}, want{401, "MissingToken", "No bearer token was sent.", BearerChallenge("", "")}},
		{"default prefix in Bearer", []string{"Authorization", "Bearer wsk_1"}, notJWS},
		{"configured header and Bearer", []string{"X-Acme-Key", "acme_1", "Authorization", "Bearer acme_1"},
			want{400, "InvalidRequest", TwoCredentialsDetail("X-Acme-Key"), BearerChallenge("invalid_request", "")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ref := a.Authenticate(newRequest("/", tt.hdr...))
			check(t, ref, tt.want)
			if ref == nil && (p.Subject != "alice" || string(p.Claims["oid"]) != `"alice"` || len(p.Claims) != 1) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
	if got := a.KeyHeader(); got != "X-Acme-Key" {
		t.Fatalf("KeyHeader %q", got)
	}
}
