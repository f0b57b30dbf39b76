package caddymodule

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Problem codes the glue refuses with besides the core's (jwtauth.Code*).
const (
	codeServiceAccountForbidden = "ServiceAccountForbidden"
	// codeInvalidPath: the path names the route only through an encoded
	// slash, a backslash or a control character.
	codeInvalidPath = "InvalidPath"
)

// errServiceAccount refuses a token of a service account, in the legacy
// API's own words.
var errServiceAccount = &jwtauth.Error{Code: codeServiceAccountForbidden, Desc: profile.ServiceAccountDetail}

// authStatus is the status of an authentication refusal: the core's codes
// carry none, so this is where they meet HTTP.
func authStatus(e *jwtauth.Error) int {
	switch e.Code {
	case jwtauth.CodeMissingToken, jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid,
		jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience, codeInvalidDPoPProof:
		return http.StatusUnauthorized
	case jwtauth.CodeInvalidRequest:
		return http.StatusBadRequest
	case codeServiceAccountForbidden:
		return http.StatusForbidden
	case jwtauth.CodeKeysUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// wwwAuthenticate is the challenge for e, or "" when none is sent.
func wwwAuthenticate(e *jwtauth.Error) string {
	if c, ok := challengeOf.Load(e); ok {
		return c.(string)
	}
	switch e.Code {
	case jwtauth.CodeMissingToken:
		return bearerChallenge("", "")
	case jwtauth.CodeInvalidRequest:
		return bearerChallenge("invalid_request", "")
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		return bearerChallenge("invalid_token", e.Desc)
	}
	return ""
}

// A refusal whose challenge depends on the handler's dpop option (the
// DPoP challenge names the accepted algorithms; a missing token is offered
// both schemes) is interned here with its challenge, so that
// wwwAuthenticate, which sees only the refusal, finds it. The refusals are
// the module's own sentences and the challenges one per DPoP
// configuration, so the table stays small; maxChallenged is a backstop
// beyond which a refusal keeps its code's default (Bearer) challenge.
var (
	challenged     sync.Map // challengeKey → *jwtauth.Error
	challengeOf    sync.Map // *jwtauth.Error → its challenge
	challengedSize atomic.Int64
)

const maxChallenged = 4096

type challengeKey struct{ code, desc, challenge string }

// withChallenge is the refusal (code, desc) answered with challenge.
func withChallenge(code, desc, challenge string) *jwtauth.Error {
	k := challengeKey{code, desc, challenge}
	if e, ok := challenged.Load(k); ok {
		return e.(*jwtauth.Error)
	}
	e := &jwtauth.Error{Code: code, Desc: desc}
	if challengedSize.Load() >= maxChallenged {
		return e
	}
	// its challenge first, so that no one finds e without it
	challengeOf.Store(e, challenge)
	if prev, loaded := challenged.LoadOrStore(k, e); loaded {
		challengeOf.Delete(e)
		return prev.(*jwtauth.Error)
	}
	challengedSize.Add(1)
	return e
}

// bearerChallenge is the one place a WWW-Authenticate Bearer challenge is
// written (RFC 6750 section 3): the realm, then the error code and its
// description when there are. A description never holds a quote: every
// one is a sentence of this module's.
func bearerChallenge(errCode, desc string) string {
	c := `Bearer realm="workspace"`
	if errCode != "" {
		c += `, error="` + errCode + `"`
	}
	if desc != "" {
		c += `, error_description="` + desc + `"`
	}
	return c
}

// statusOf maps an error of the profile service to the status and envelope
// item the route answers with. It is the one place where domain errors meet
// HTTP; anything it does not know is a store failure.
func statusOf(err error) (int, profile.Item) {
	switch {
	case errors.Is(err, profile.ErrNotFound):
		return http.StatusNotFound, profile.NotFoundItem()
	case errors.Is(err, profile.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, profile.PreconditionFailedItem()
	case errors.Is(err, profile.ErrUserNameTaken):
		return http.StatusBadRequest, profile.UserNameTakenItem()
	default:
		return http.StatusServiceUnavailable, profile.StorageUnavailableItem()
	}
}
