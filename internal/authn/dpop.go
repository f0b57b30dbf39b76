package authn

import (
	"encoding/json"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// DPoPMode is the route's dpop option.
type DPoPMode uint8

const (
	// DPoPAllowed: bearer tokens, and DPoP-bound tokens with their proofs.
	DPoPAllowed DPoPMode = iota
	// DPoPOff: the DPoP scheme is another scheme (no token), and bound
	// tokens are refused since their proof cannot be checked.
	DPoPOff
	// DPoPRequired: DPoP-bound tokens with their proofs only.
	DPoPRequired
)

// Problem details of DPoP refusals: sentences for the client.
const (
	DetailDPoPRequired    = "This route accepts only DPoP-bound tokens, sent with the DPoP scheme and a DPoP proof."
	DetailNoDPoPToken     = "No DPoP-bound token was sent."
	DetailBoundAsBearer   = "The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."
	DetailBoundNoDPoP     = "The token is bound to a DPoP key, and this route does not accept DPoP."
	DetailUnboundAsDPoP   = "The token is not bound to a DPoP key (no cnf.jkt claim): send it with the Bearer scheme."
	DetailCnfMalformed    = "The token has a malformed cnf claim."
	DetailCnfOther        = "The token is bound to a key by a confirmation method other than DPoP, which this route cannot check."
	DetailDPoPKeyMismatch = "The token is bound to another key than the one that signed the DPoP proof."
)

// ErrProofRecordUnavailable refuses a request whose DPoP proof could not
// be checked for replay because the record of used proofs shared by the
// nodes is down: answered as the profile store being down (503, the
// StorageUnavailable envelope).
var ErrProofRecordUnavailable = &jwtauth.Error{Code: CodeStorageUnavailable, Desc: "The record of used DPoP proofs is unavailable."}

// DPoP is the route's DPoP setting (RFC 9449).
type DPoP struct {
	Mode DPoPMode
	// Proofs checks and spends proofs; nil is DPoPOff whatever Mode says.
	Proofs *dpop.Verifier
	// RequestTarget is the method and URI the client addressed, which a
	// proof's htm and htu must name: the glue knows the original request
	// and the configured origin. Called only when a proof is checked.
	RequestTarget func(*http.Request) (method, uri string)
}

// checkBinding applies the credential's binding (cnf.jkt, RFC 9449 §6)
// and, for one sent with the DPoP scheme, its proof. A bound credential is
// refused without a valid proof by its key whatever the mode and however
// it was sent; the proof is checked on every request (the token cache
// holds the token's verification only) and spent only once everything
// else passed. It returns the thumbprint the credential is bound to, ""
// when it is not bound.
func (a *Authenticator) checkBinding(r *http.Request, c jwtauth.Claims, cred Credential) (string, *Refusal) {
	ch := &a.challenges
	jkt, bound, aerr := confirmationKey(c)
	viaDPoP := cred.viaDPoP()
	switch {
	case aerr != nil && viaDPoP:
		return "", ch.asDPoP(aerr)
	case aerr != nil:
		return "", refuse(aerr)
	case !viaDPoP && !bound:
		return "", nil // a bearer credential
	case !viaDPoP && !ch.dpopOn:
		return "", refuse(jwtauth.InvalidToken(DetailBoundNoDPoP))
	case !viaDPoP:
		return "", ch.asDPoP(jwtauth.InvalidToken(DetailBoundAsBearer))
	case !bound:
		return "", ch.asDPoP(jwtauth.InvalidToken(DetailUnboundAsDPoP))
	}
	d := &a.dpop
	method, uri := d.RequestTarget(r)
	p, perr := d.Proofs.Check(dpop.Request{Proofs: r.Header.Values("DPoP"), Method: method, URI: uri, AccessToken: cred.Token, Thumbprint: jkt})
	switch {
	case perr != nil && perr.KeyMismatch:
		return "", ch.asDPoP(jwtauth.InvalidToken(DetailDPoPKeyMismatch))
	case perr != nil:
		return "", ch.asDPoP(&jwtauth.Error{Code: CodeInvalidDPoPProof, Desc: perr.Desc})
	}
	switch perr := d.Proofs.Commit(r.Context(), p); {
	case perr != nil && perr.Unavailable:
		// the record of used proofs failed: nothing was learnt of the
		// proof, so the answer of a store being down, never a 401
		return "", refuse(ErrProofRecordUnavailable)
	case perr != nil:
		return "", ch.asDPoP(&jwtauth.Error{Code: CodeInvalidDPoPProof, Desc: perr.Desc})
	}
	return jkt, nil
}

// confirmationKey reads cnf (RFC 7800): bound is true when it names a
// jkt, the thumbprint of the key the token is bound to. A cnf that is not
// an object, a jkt that is not a non-empty string, and a cnf of another
// method only (x5t#S256 of mutual TLS, ...), which this edge cannot check,
// are refused.
func confirmationKey(c jwtauth.Claims) (jkt string, bound bool, aerr *jwtauth.Error) {
	raw, ok := c["cnf"]
	if !ok {
		return "", false, nil
	}
	var cnf map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &cnf) != nil {
		return "", false, jwtauth.InvalidToken(DetailCnfMalformed)
	}
	rawJKT, ok := cnf["jkt"]
	if !ok {
		return "", false, jwtauth.InvalidToken(DetailCnfOther)
	}
	var s string
	if len(rawJKT) == 0 || rawJKT[0] != '"' || json.Unmarshal(rawJKT, &s) != nil || s == "" {
		return "", false, jwtauth.InvalidToken(DetailCnfMalformed)
	}
	return s, true, nil
}
