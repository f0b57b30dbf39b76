package caddymodule

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// checkDPoP applies the token's binding (cnf.jkt, RFC 9449 §6) and, for a
// token sent with the DPoP scheme, its proof. A bound token is refused
// without a valid proof by its key whatever the mode and however it was
// sent; the proof is checked on every request (the token cache holds the
// token's verification only) and spent only once everything else passed.
func (h *Handler) checkDPoP(r *http.Request, c jwtauth.Claims, cred jwtauth.Credential) *refusal {
	d := h.DPoP
	jkt, bound, aerr := confirmationKey(c)
	viaDPoP := cred.Scheme == jwtauth.SchemeDPoP
	switch {
	case aerr != nil && viaDPoP:
		return d.asDPoP(aerr)
	case aerr != nil:
		return refuse(aerr)
	case !viaDPoP && !bound:
		return nil // a bearer token, as before DPoP
	case !viaDPoP && !d.on():
		return refuse(jwtauth.InvalidToken(detailBoundNoDPoP))
	case !viaDPoP:
		return d.asDPoP(jwtauth.InvalidToken(detailBoundAsBearer))
	case !bound:
		return d.asDPoP(jwtauth.InvalidToken(detailUnboundAsDPoP))
	}
	method, uri := d.requestTarget(r)
	p, perr := d.verifier.Check(dpop.Request{Proofs: r.Header.Values("DPoP"), Method: method, URI: uri, AccessToken: cred.Token, Thumbprint: jkt})
	switch {
	case perr != nil && perr.KeyMismatch:
		return d.asDPoP(jwtauth.InvalidToken(detailDPoPKeyMismatch))
	case perr != nil:
		return d.asDPoP(&jwtauth.Error{Code: codeInvalidDPoPProof, Desc: perr.Desc})
	}
	if perr := d.verifier.Commit(p); perr != nil {
		return d.asDPoP(&jwtauth.Error{Code: codeInvalidDPoPProof, Desc: perr.Desc})
	}
	return nil
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
		return "", false, jwtauth.InvalidToken(detailCnfMalformed)
	}
	rawJKT, ok := cnf["jkt"]
	if !ok {
		return "", false, jwtauth.InvalidToken(detailCnfOther)
	}
	var s string
	if len(rawJKT) == 0 || rawJKT[0] != '"' || json.Unmarshal(rawJKT, &s) != nil || s == "" {
		return "", false, jwtauth.InvalidToken(detailCnfMalformed)
	}
	return s, true, nil
}

// requestTarget is the method and URI the client addressed, which htm and
// htu must name: Caddy's original request (before any rewrite, this
// route's included), on the configured origin or else the request's own
// scheme and Host.
func (d *DPoP) requestTarget(r *http.Request) (method, uri string) {
	method, u := r.Method, r.URL
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		method, u = orig.Method, orig.URL
	}
	origin := d.origin
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return method, origin + u.EscapedPath()
}
