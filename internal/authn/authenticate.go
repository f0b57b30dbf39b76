package authn

import (
	"context"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Verifier checks a token of one kind and answers with its claims.
// *jwtauth.Verifier is the JWT one, introspection another; API keys have
// their own (KeyVerifier). It refuses with the core's codes
// (jwtauth.Error).
type Verifier interface {
	Verify(ctx context.Context, credential string) (jwtauth.Claims, *jwtauth.Error)
}

// Method is how a principal was authenticated, as {http.auth.user.method}
// shows it.
type Method string

const (
	MethodJWT           Method = "jwt"
	MethodIntrospection Method = "introspection"
	MethodAPIKey        Method = "api_key"
)

// PrincipalKind is what kind of caller a principal is.
type PrincipalKind uint8

const (
	PrincipalUser PrincipalKind = iota
	PrincipalServiceAccount
)

// Principal is the caller, whatever its credential: the subject (the
// profile key), its kind, its claims (for placeholders, identity headers
// and create_missing), the DPoP key it is bound to (cnf.jkt, "" when
// unbound), the method it came by, and the credential itself (upstream
// mode forwards a token, never an API key), and for an API key its
// record's id (KeyID, "" for other methods).
type Principal struct {
	Subject    string
	Kind       PrincipalKind
	Claims     jwtauth.Claims
	Binding    string
	Method     Method
	Credential Credential
	KeyID      string
}

// Config is what an Authenticator decides with.
type Config struct {
	// JWT verifies JWTs; nil when the route has no key source (only
	// introspection): a JWT is then refused, never introspected.
	JWT Verifier
	// Introspection verifies opaque tokens, APIKeys API keys; nil: not
	// configured, such credentials are refused as an invalid token without
	// being sent anywhere.
	Introspection Verifier
	APIKeys       KeyVerifier
	// APIKeyHeader is the header an API key comes in, whatever its value;
	// APIKeyPrefix starts a Bearer or access_token value that is an API
	// key. Empty: apikey.DefaultHeader, apikey.DefaultPrefix. They are
	// recognised with APIKeys nil too, so that a key is never sent to
	// another verifier.
	APIKeyHeader string
	APIKeyPrefix string
	// Subject is the claim that names the caller; empty is
	// jwtauth.DefaultSubject.
	Subject string
	// AllowQuery takes a token from the access_token query parameter.
	AllowQuery     bool
	ServiceAccount ServiceAccount
	DPoP           DPoP
}

// Authenticator makes the authentication decision of the route. It is
// safe for concurrent use.
type Authenticator struct {
	verifiers      [KindAPIKey + 1]Verifier
	methods        [KindAPIKey + 1]Method
	keys           KeyVerifier
	recognition    KeyRecognition
	subject        string
	allowQuery     bool
	serviceAccount ServiceAccount
	dpop           DPoP
	challenges     Challenges
}

// New builds the authenticator of cfg.
func New(cfg Config) *Authenticator {
	a := &Authenticator{
		subject:        cfg.Subject,
		allowQuery:     cfg.AllowQuery,
		serviceAccount: cfg.ServiceAccount,
		dpop:           cfg.DPoP,
		keys:           cfg.APIKeys,
		recognition:    KeyRecognition{Header: http.CanonicalHeaderKey(cfg.APIKeyHeader), Prefix: cfg.APIKeyPrefix},
	}
	if a.recognition.Header == "" {
		a.recognition.Header = apikey.DefaultHeader
	}
	if a.recognition.Prefix == "" {
		a.recognition.Prefix = apikey.DefaultPrefix
	}
	if a.subject == "" {
		a.subject = jwtauth.DefaultSubject
	}
	if cfg.DPoP.Proofs == nil {
		a.dpop.Mode = DPoPOff // no proof can be checked
	} else {
		// DPoP challenges name the algorithms proofs may use
		a.challenges = NewChallenges(a.dpop.Mode, cfg.DPoP.Proofs.Algorithms())
	}
	a.verifiers[KindJWT], a.methods[KindJWT] = cfg.JWT, MethodJWT
	a.verifiers[KindOpaque], a.methods[KindOpaque] = cfg.Introspection, MethodIntrospection
	a.methods[KindAPIKey] = MethodAPIKey
	return a
}

// Challenges are the challenges of the authenticator's DPoP setting, for
// the refusals the glue answers itself (a backend's 401).
func (a *Authenticator) Challenges() *Challenges { return &a.challenges }

// SubjectClaim is the name of the claim that names the caller.
func (a *Authenticator) SubjectClaim() string { return a.subject }

// KeyHeader is the header API keys come in, in canonical form.
func (a *Authenticator) KeyHeader() string { return a.recognition.Header }

// Details of refusals of credentials no verifier takes. An API key gets
// the answer any bad key will get once keys are verified, so that the
// answer never tells a known key from an unknown one; an opaque token or
// any other shape gets the answer it got before opaque tokens were told
// apart.
const (
	DetailInvalidAPIKey = "The API key is not valid."
	DetailNotJWS        = "The token is not a compact JWS."
	DetailNoKeySet      = "The route verifies no JWT: it has no key set."
)

// Authenticate decides who the caller of r is, in this order: one
// credential (Extract); with DPoP required, the DPoP scheme; the verifier
// of its kind (none configured: refused, sent nowhere); its DPoP binding;
// the service-account decision, before the subject rule so that a service
// account is refused as one even when it names no usable subject; the
// subject rule; an identity claim named twice.
//
// The Principal comes with the refusals made once the credential verified
// and was bound, those of a service account (Kind PrincipalServiceAccount,
// Subject "" when unusable) and of an identity claim named twice, so
// that the glue can still log who was refused; with any other refusal it
// is zero.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, *Refusal) {
	ch := &a.challenges
	cred, aerr := Extract(r, a.allowQuery, ch.dpopOn, a.recognition)
	if aerr != nil {
		return Principal{}, ch.missing(aerr)
	}
	viaDPoP := cred.viaDPoP()
	if ch.dpopRequired && !viaDPoP {
		// refused before any verification: no bearer credential can pass
		return Principal{}, ch.asDPoP(jwtauth.InvalidToken(DetailDPoPRequired))
	}
	if cred.Kind == KindAPIKey {
		return a.authenticateKey(r, cred)
	}
	v := a.verifiers[cred.Kind]
	if v == nil {
		detail := DetailNotJWS
		if cred.Kind == KindJWT {
			detail = DetailNoKeySet
		}
		return Principal{}, a.tokenRefusal(viaDPoP, jwtauth.InvalidToken(detail))
	}
	c, aerr := v.Verify(r.Context(), cred.Token)
	if aerr != nil {
		return Principal{}, a.tokenRefusal(viaDPoP, aerr)
	}
	jkt, ref := a.checkBinding(r, c, cred)
	if ref != nil {
		return Principal{}, ref
	}
	p := Principal{Claims: c, Binding: jkt, Method: a.methods[cred.Kind], Credential: cred}
	sub, _ := c.Str(a.subject)
	subjectErr := checkSubject(sub)
	if subjectErr == nil {
		p.Subject = sub
	}
	if a.serviceAccount.Is(c) {
		p.Kind = PrincipalServiceAccount
		return p, refuse(errServiceAccount)
	}
	if subjectErr != nil {
		return Principal{}, refuse(subjectErr)
	}
	// .NET's FindFirst takes the first of two case spellings; this edge
	// would take another, so a credential naming an identity claim twice
	// (sub and SUB, UserType and usertype) is refused.
	if len(c.Folded(a.subject)) > 1 || len(c.Folded(UserTypeClaim)) > 1 {
		return p, refuse(jwtauth.InvalidToken(profile.DetailIdentityClaimTwice))
	}
	return p, nil
}

// checkSubject is the subject rule of every credential: the token core's
// (a non-empty string without spaces around it), then one rule for the
// profile key on every backend: what an import would refuse as a UserId
// (too long, control characters) is no subject either, so bolt and
// PostgreSQL never answer it differently.
func checkSubject(sub string) *jwtauth.Error {
	if e := jwtauth.CheckSubject(sub); e != nil {
		return e
	}
	if len(profile.UserIDProblems(sub)) > 0 {
		return jwtauth.InvalidToken(profile.DetailUnusableSubject)
	}
	return nil
}

// errServiceAccount refuses a service account, in the legacy API's own
// words.
var errServiceAccount = &jwtauth.Error{Code: CodeServiceAccountForbidden, Desc: profile.ServiceAccountDetail}

// tokenRefusal is a verifier's refusal, told in the scheme the client used.
func (a *Authenticator) tokenRefusal(viaDPoP bool, e *jwtauth.Error) *Refusal {
	if viaDPoP {
		return a.challenges.asDPoP(e)
	}
	return refuse(e)
}
