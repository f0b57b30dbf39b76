package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// fakeVerifier answers with the claims it holds for a credential and
// counts what it was asked, so a test sees which verifier a credential
// reached, if any.
type fakeVerifier struct {
	claims map[string]string // credential -> claims JSON
	calls  []string
}

func (f *fakeVerifier) Verify(_ context.Context, cred string) (jwtauth.Claims, *jwtauth.Error) {
	f.calls = append(f.calls, cred)
	js, ok := f.claims[cred]
	if !ok {
		return nil, jwtauth.InvalidToken("The token signature is invalid.")
	}
	var c jwtauth.Claims
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		panic(err)
	}
	return c, nil
}

const (
	goodJWT    = "eyJh.eyJz.c2ln"
	aliceClaim = `{"sub":"alice","UserType":1}`
)

var (
	defaultSA      = ServiceAccount{Claim: UserTypeClaim, Values: []string{"2"}}
	invalidAPIKey  = want{401, "InvalidToken", DetailInvalidAPIKey, BearerChallenge("invalid_token", DetailInvalidAPIKey)}
	notJWS         = want{401, "InvalidToken", DetailNotJWS, BearerChallenge("invalid_token", DetailNotJWS)}
	twoCredentials = want{400, "InvalidRequest", TwoCredentialsDetail("X-Api-Key"), BearerChallenge("invalid_request", "")}
)

// want is a refusal as the client sees it; the zero want is acceptance.
type want struct {
	status            int
	code, detail, chl string
}

func newRequest(target string, hdr ...string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func check(t *testing.T, ref *Refusal, w want) {
	t.Helper()
	switch {
	case w.status == 0 && ref != nil:
		t.Fatalf("refused: %+v", *ref)
	case w.status == 0:
	case ref == nil:
		t.Fatalf("accepted, want %+v", w)
	case ref.Status != w.status || ref.Code != w.code || ref.Detail != w.detail || ref.Challenge != w.chl:
		t.Fatalf("refusal\n got %d %s %q %q\nwant %d %s %q %q", ref.Status, ref.Code, ref.Detail, ref.Challenge, w.status, w.code, w.detail, w.chl)
	}
}

// TestRouting: every shape of credential reaches the verifier of its kind
// or none, before any of them is asked anything: with no introspection
// and no API-key store, an opaque token and an API key are refused and
// sent nowhere; two credentials are an invalid request.
func TestRouting(t *testing.T) {
	long := strings.Repeat("a", jwtauth.MaxTokenLen)
	tests := []struct {
		name    string
		target  string
		hdr     []string
		want    want
		reached string // "jwt", "introspection", "api_key" or "" for none
	}{
		{name: "JWT in Bearer", target: "/", hdr: []string{"Authorization", "Bearer " + goodJWT}, reached: "jwt"},
		{name: "JWT in access_token", target: "/?access_token=" + goodJWT, reached: "jwt"},
		{name: "wsk_ in Bearer", target: "/", hdr: []string{"Authorization", "Bearer wsk_live_abc"}, want: invalidAPIKey},
		{name: "wsk_ that looks like a JWT", target: "/", hdr: []string{"Authorization", "Bearer wsk_a.b.c"}, want: invalidAPIKey},
		{name: "wsk_ in access_token", target: "/?access_token=wsk_live_abc", want: invalidAPIKey},
		{name: "X-Api-Key alone", target: "/", hdr: []string{"X-Api-Key", "wsk_live_abc"}, want: invalidAPIKey},
		{name: "X-Api-Key of any value", target: "/", hdr: []string{"X-Api-Key", goodJWT}, want: invalidAPIKey},
		{name: "X-Api-Key empty", target: "/", hdr: []string{"X-Api-Key", ""}, want: invalidAPIKey},
		{name: "X-Api-Key lower case", target: "/", hdr: []string{"x-api-key", "k"}, want: invalidAPIKey},
		{name: "X-Api-Key with Bearer", target: "/", hdr: []string{"X-Api-Key", "k", "Authorization", "Bearer " + goodJWT}, want: twoCredentials},
		{name: "X-Api-Key with Basic", target: "/", hdr: []string{"X-Api-Key", "k", "Authorization", "Basic dTpw"}, want: twoCredentials},
		{name: "X-Api-Key with access_token", target: "/?access_token=" + goodJWT, hdr: []string{"X-Api-Key", "k"}, want: twoCredentials},
		{name: "X-Api-Key twice", target: "/", hdr: []string{"X-Api-Key", "k", "X-Api-Key", "k"}, want: twoCredentials},
		{name: "X-Api-Key with a misspelt token parameter", target: "/?ACCESS_TOKEN=x", hdr: []string{"X-Api-Key", "k"},
			want: want{400, "InvalidRequest", "The token parameter must be spelled access_token, after an & or at the start of the query.", BearerChallenge("invalid_request", "")}},
		{name: "five-part JWE", target: "/", hdr: []string{"Authorization", "Bearer eyJh.a.b.c.d"}, want: notJWS},
		{name: "non-token characters", target: "/", hdr: []string{"Authorization", "Bearer abc$def"}, want: notJWS},
		{name: "opaque token", target: "/", hdr: []string{"Authorization", "Bearer 2YotnFZFEjr1zCsicMWpAA"}, want: notJWS},
		{name: "opaque token of 8 KiB", target: "/", hdr: []string{"Authorization", "Bearer " + long}, want: notJWS},
		{name: "opaque token of 8 KiB + 1", target: "/", hdr: []string{"Authorization", "Bearer " + long + "a"}, want: notJWS},
		{name: "JWT of 8 KiB + 1", target: "/", hdr: []string{"Authorization", "Bearer a.b." + long[:len(long)-3] + "a"}, want: notJWS},
		{name: "no credential", target: "/", want: want{401, "MissingToken", "No bearer token was sent.", BearerChallenge("", "")}},
		{name: "token in header and query", target: "/?access_token=" + goodJWT, hdr: []string{"Authorization", "Bearer " + goodJWT},
			want: want{400, "InvalidRequest", "The token was sent both in the Authorization header and in the query.", BearerChallenge("invalid_request", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwt := &fakeVerifier{claims: map[string]string{goodJWT: aliceClaim}}
			a := New(Config{JWT: jwt, AllowQuery: true, ServiceAccount: defaultSA})
			p, ref := a.Authenticate(newRequest(tt.target, tt.hdr...))
			check(t, ref, tt.want)
			if got := len(jwt.calls); (tt.reached == "jwt") != (got == 1) || got > 1 {
				t.Fatalf("the JWT verifier was asked %d times", got)
			}
			if ref == nil && (p.Method != MethodJWT || p.Subject != "alice" || p.Kind != PrincipalUser) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

// TestRoutingToConfiguredVerifiers: once introspection and an API-key
// store are configured, opaque tokens and API keys reach them and only
// them, and the principal says which method it came by.
// jweToken has a compact JWE's shape: an opaque token to this module.
const jweToken = "eyJhbGciOiJBMjU2R0NNS1ciLCJlbmMiOiJBMjU2R0NNIn0.a2V5.aXY.Y2lwaGVy.dGFn"

func TestRoutingToConfiguredVerifiers(t *testing.T) {
	tests := []struct {
		name   string
		hdr    []string
		method Method
	}{
		{"JWT", []string{"Authorization", "Bearer " + goodJWT}, MethodJWT},
		{"opaque token", []string{"Authorization", "Bearer opaque-1"}, MethodIntrospection},
		{"compact JWE", []string{"Authorization", "Bearer " + jweToken}, MethodIntrospection},
		{"wsk_ in Bearer", []string{"Authorization", "Bearer wsk_1"}, MethodAPIKey},
		{"X-Api-Key", []string{"X-Api-Key", "wsk_1"}, MethodAPIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwt := &fakeVerifier{claims: map[string]string{goodJWT: aliceClaim}}
			intro := &fakeVerifier{claims: map[string]string{"opaque-1": aliceClaim, jweToken: aliceClaim}}
			keys := &fakeKeys{owners: map[string]KeyOwner{"wsk_1": {ID: "k1", Subject: "alice"}}}
			a := New(Config{JWT: jwt, Introspection: intro, APIKeys: keys, ServiceAccount: defaultSA})
			p, ref := a.Authenticate(newRequest("/", tt.hdr...))
			check(t, ref, want{})
			if p.Method != tt.method || p.Subject != "alice" {
				t.Fatalf("principal %+v, want method %s", p, tt.method)
			}
			asked := map[Method]int{MethodJWT: len(jwt.calls), MethodIntrospection: len(intro.calls), MethodAPIKey: len(keys.calls)}
			for m, n := range asked {
				if (m == tt.method) != (n == 1) {
					t.Fatalf("verifier %s asked %d times", m, n)
				}
			}
		})
	}
}

// TestAPIKeyNeverIntrospected: with introspection configured and no
// API-key store, an API key is refused without reaching introspection (or
// the JWT verifier): a key is never sent to a third party.
func TestAPIKeyNeverIntrospected(t *testing.T) {
	for name, hdr := range map[string][]string{
		"G06_X-Api-Key":        {"X-Api-Key", "wsk_live_abc"},
		"G06_wsk_in_Bearer":    {"Authorization", "Bearer wsk_live_abc"},
		"G06_X-Api-Key_JWT":    {"X-Api-Key", goodJWT},
		"G06_X-Api-Key_opaque": {"X-Api-Key", "opaque"},
	} {
		t.Run(name, func(t *testing.T) {
			jwt, intro := &fakeVerifier{claims: map[string]string{goodJWT: aliceClaim}}, &fakeVerifier{}
			_, ref := New(Config{JWT: jwt, Introspection: intro, ServiceAccount: defaultSA}).Authenticate(newRequest("/", hdr...))
			check(t, ref, invalidAPIKey)
			if len(jwt.calls)+len(intro.calls) != 0 {
				t.Fatalf("sent to a verifier: jwt %v, introspection %v", jwt.calls, intro.calls)
			}
		})
	}
}

// TestClassify: the shapes, by their prefix, dots, characters and length.
func TestClassify(t *testing.T) {
	for tok, k := range map[string]Kind{
		"a.b.c":                   KindJWT,
		"a+b.c.d":                 KindJWT, // the core's pre-check refuses it
		"wsk_x":                   KindAPIKey,
		"wsk_a.b.c":               KindAPIKey,
		"a.b.c.d.e":               KindOpaque,
		"opaque":                  KindOpaque,
		"a.b":                     KindOpaque,
		"mF_9.B5f-4~+/==":         KindOpaque,
		"a=b":                     KindInvalid,
		"=":                       KindInvalid,
		"":                        KindInvalid,
		"a b":                     KindInvalid,
		"é":                       KindInvalid,
		strings.Repeat("a", 8192): KindOpaque,
		strings.Repeat("a", 8193): KindInvalid,
	} {
		if got := Classify(tok, "wsk_"); got != k {
			t.Errorf("Classify(%.20q) = %s, want %s", tok, got, k)
		}
	}
}

// TestServiceAccountBeforeSubject: the service-account decision comes
// before the subject rule, so a service account is told it is one even
// when it names no usable subject; the others keep their own answers.
func TestServiceAccountBeforeSubject(t *testing.T) {
	sa := want{403, CodeServiceAccountForbidden, profile.ServiceAccountDetail, ""}
	noSubject := want{401, "InvalidToken", "The token has no subject.", BearerChallenge("invalid_token", "The token has no subject.")}
	spaced := want{401, "InvalidToken", "The token subject has leading or trailing whitespace.", BearerChallenge("invalid_token", "The token subject has leading or trailing whitespace.")}
	unusable := want{401, "InvalidToken", profile.DetailUnusableSubject, BearerChallenge("invalid_token", profile.DetailUnusableSubject)}
	twice := want{401, "InvalidToken", profile.DetailIdentityClaimTwice, BearerChallenge("invalid_token", profile.DetailIdentityClaimTwice)}
	tests := []struct {
		name, claims string
		want         want
		subject      string // of the principal returned, refused or not
	}{
		{"user", `{"sub":"alice","UserType":1}`, want{}, "alice"},
		{"service account", `{"sub":"robot","UserType":2}`, sa, "robot"},
		{"service account without subject", `{"UserType":2}`, sa, ""},
		{"service account with unusable subject", `{"sub":" robot","UserType":"2"}`, sa, ""},
		{"service account named twice", `{"sub":"robot","UserType":1,"usertype":2}`, sa, "robot"},
		{"user without subject", `{"UserType":1}`, noSubject, ""},
		{"user with a numeric subject", `{"sub":7}`, noSubject, ""},
		{"user with spaces around the subject", `{"sub":" alice"}`, spaced, ""},
		{"user with unusable subject", `{"sub":"alice\u0001"}`, unusable, ""},
		{"subject twice", `{"sub":"alice","SUB":"bob"}`, twice, "alice"},
		{"user type twice", `{"sub":"alice","UserType":1,"USERTYPE":1}`, twice, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(Config{JWT: &fakeVerifier{claims: map[string]string{goodJWT: tt.claims}}, ServiceAccount: defaultSA})
			p, ref := a.Authenticate(newRequest("/", "Authorization", "Bearer "+goodJWT))
			check(t, ref, tt.want)
			if p.Subject != tt.subject {
				t.Fatalf("principal subject %q, want %q", p.Subject, tt.subject)
			}
			if isSA := tt.want.code == CodeServiceAccountForbidden; isSA != (p.Kind == PrincipalServiceAccount) {
				t.Fatalf("principal kind %d", p.Kind)
			}
		})
	}
}

// TestServiceAccountIs: the claim read as ASP.NET reads it, names
// ignoring case, arrays element by element, numbers by value.
func TestServiceAccountIs(t *testing.T) {
	s := ServiceAccount{Claim: "UserType", Values: []string{"2"}}
	for claims, is := range map[string]bool{
		`{"UserType":2}`:         true,
		`{"UserType":2.0}`:       true,
		`{"UserType":2e0}`:       true,
		`{"UserType":"2"}`:       true,
		`{"UserType":" 2"}`:      true,
		`{"UserType":"+2"}`:      true,
		`{"UserType":"02"}`:      true,
		`{"usertype":2}`:         true,
		`{"UserType":[1,2]}`:     true,
		`{"UserType":1}`:         false,
		`{"UserType":"0x2"}`:     false,
		`{"UserType":"2_0"}`:     false,
		`{"UserType":[1,"3"]}`:   false,
		`{"UserType":{"a":2}}`:   false,
		`{"UserTypes":2}`:        false,
		`{"sub":"2"}`:            false,
		`{"UserType":"robot"}`:   false,
		`{"UserType":"2 robot"}`: false,
	} {
		var c jwtauth.Claims
		if err := json.Unmarshal([]byte(claims), &c); err != nil {
			t.Fatal(err)
		}
		if got := s.Is(c); got != is {
			t.Errorf("%s: service account %v, want %v", claims, got, is)
		}
	}
}

// TestUserType: the UserType claim in its canonical integer form.
func TestUserType(t *testing.T) {
	for claims, w := range map[string]string{
		`{"UserType":1}`:     "1",
		`{"UserType":1.0}`:   "1",
		`{"UserType":" 1"}`:  "1",
		`{"usertype":"+01"}`: "1",
		`{"UserType":1.5}`:   "1.5",
		`{"UserType":" x "}`: "x",
		`{"sub":"a"}`:        "<none>",
	} {
		var c jwtauth.Claims
		if err := json.Unmarshal([]byte(claims), &c); err != nil {
			t.Fatal(err)
		}
		got, ok := UserType(c)
		if !ok {
			got = "<none>"
		}
		if got != w {
			t.Errorf("%s: %q, want %q", claims, got, w)
		}
	}
}

// failingVerifier refuses every credential with one error.
type failingVerifier struct{ err *jwtauth.Error }

func (f failingVerifier) Verify(context.Context, string) (jwtauth.Claims, *jwtauth.Error) {
	return nil, f.err
}

// TestUnavailableIsServiceUnavailable: when the key sets or the
// introspection endpoint cannot answer, the refusal is a 503 without a
// challenge in either scheme, never a 401 that would tell the client its
// credential is bad.
func TestUnavailableIsServiceUnavailable(t *testing.T) {
	for _, e := range []*jwtauth.Error{jwtauth.ErrKeysUnavailable, jwtauth.ErrIntrospectionUnavailable} {
		for _, scheme := range []string{"Bearer ", "DPoP "} {
			t.Run(e.Code+"/"+scheme, func(t *testing.T) {
				if got := Status(e.Code); got != http.StatusServiceUnavailable {
					t.Fatalf("Status(%s) = %d", e.Code, got)
				}
				proofs, err := dpop.New(dpop.Config{Algorithms: []string{"ES256"}})
				if err != nil {
					t.Fatal(err)
				}
				a := New(Config{JWT: failingVerifier{e}, Introspection: failingVerifier{e}, ServiceAccount: defaultSA,
					DPoP: DPoP{Mode: DPoPAllowed, Proofs: proofs}})
				_, ref := a.Authenticate(newRequest("/", "Authorization", scheme+"opaque-1"))
				check(t, ref, want{503, e.Code, e.Desc, ""})
			})
		}
	}
}
