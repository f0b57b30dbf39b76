package authn

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// KeyOwner is what the API-key store says of a usable key: its record's
// id, the subject it acts as, and whether it is a service account's.
type KeyOwner struct {
	ID      string
	Subject string
	Service bool
}

// KeyVerifier checks an API key against the key store: a usable key's
// owner, or ErrInvalidAPIKey for every bad key (unknown, revoked, expired,
// malformed: one answer), or ErrKeyStoreUnavailable when the store cannot
// answer now.
type KeyVerifier interface {
	VerifyKey(ctx context.Context, key string) (KeyOwner, *jwtauth.Error)
}

// CodeStorageUnavailable refuses a request whose API key could not be
// checked because its store is down: the glue answers it as it answers
// the profile store being down (503, the StorageUnavailable envelope),
// never as a 401 that would tell the client its key is bad.
const CodeStorageUnavailable = profile.CodeStorageUnavailable

// The refusals of a KeyVerifier.
var (
	ErrInvalidAPIKey       = jwtauth.InvalidToken(DetailInvalidAPIKey)
	ErrKeyStoreUnavailable = &jwtauth.Error{Code: CodeStorageUnavailable, Desc: "The API key store is unavailable."}
)

// authenticateKey is the decision on an API key, made before any profile
// read or backend call: never with the DPoP scheme (keys are not
// sender-constrained), nowhere without a key store, then the store's
// answer; a service account's key is refused with the 403 of every
// service account, a user's key acts as its owner with the subject claim
// as its only claim.
func (a *Authenticator) authenticateKey(r *http.Request, cred Credential) (Principal, *Refusal) {
	if cred.viaDPoP() {
		return Principal{}, a.challenges.asDPoP(ErrInvalidAPIKey)
	}
	if a.keys == nil {
		return Principal{}, refuse(ErrInvalidAPIKey)
	}
	owner, aerr := a.keys.VerifyKey(r.Context(), cred.Token)
	if aerr != nil {
		return Principal{}, refuse(aerr)
	}
	p := Principal{Method: MethodAPIKey, Credential: cred, KeyID: owner.ID}
	if checkSubject(owner.Subject) == nil {
		p.Subject = owner.Subject
		raw, _ := json.Marshal(owner.Subject)
		p.Claims = jwtauth.Claims{a.subject: raw}
	}
	if owner.Service {
		p.Kind = PrincipalServiceAccount
		return p, refuse(errServiceAccount)
	}
	if p.Subject == "" {
		// a stored owner that is no usable profile key (an import's): the
		// key lets no one in, and says so as every bad key does
		return Principal{}, refuse(ErrInvalidAPIKey)
	}
	return p, nil
}
