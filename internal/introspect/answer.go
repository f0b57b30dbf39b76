package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Reading one answer: what a call brought, turned into the claims of the
// token or into a refusal that holds whatever the rules.

// registered are the members read from the answer's top level only: an
// extension (ext) never supplies them, so it can neither make an answer
// active nor name another audience, subject or client.
var registered = map[string]bool{
	"active": true, "sub": true, "exp": true, "nbf": true, "iat": true, "iss": true, "aud": true,
	"client_id": true, "token_type": true, "token_use": true, "cnf": true, "scope": true,
}

// extMember is where Ory Hydra puts claims beyond the registered ones.
const extMember = "ext"

// Refusals an answer earns whatever the claim rules: cached for
// negative_ttl, so a flood of dead tokens costs one call each per
// interval.
var (
	errInactive     = jwtauth.InvalidToken("The token is not active.")
	errRefreshToken = jwtauth.InvalidToken("A refresh token is not an access token.")
	errNotStrict    = jwtauth.InvalidToken("The introspection answer is not strict JSON: invalid UTF-8, a control character, a lone surrogate or a member named twice.")
)

// errBadAnswer: the body is not a JSON object at all (an HTML error page,
// a proxy's answer): the endpoint failed, which says nothing of the token.
var errBadAnswer = errors.New("the answer is not a JSON object")

// parseAnswer reads an answer's JSON: the claims of an active token; a
// refusal for an inactive one (or one refused whatever the rules); or an
// error when the body is no answer at all.
func parseAnswer(body []byte) (jwtauth.Claims, *jwtauth.Error, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, nil, errBadAnswer
	}
	if !json.Valid(body) {
		return nil, nil, errBadAnswer
	}
	if jsonscan.CheckStrict(body) != nil {
		return nil, errNotStrict, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, nil, errBadAnswer
	}
	return answerClaims(top)
}

// answerClaims turns a decoded answer into the token's claims: active must
// be the JSON value true (not "true", not 1: RFC 7662 §2.2 says boolean);
// a refresh token is refused; members the top level lacks come from ext.
func answerClaims(top map[string]json.RawMessage) (jwtauth.Claims, *jwtauth.Error, error) {
	if string(top["active"]) != "true" {
		return nil, errInactive, nil
	}
	if aerr := checkTokenKind(top); aerr != nil {
		return nil, aerr, nil
	}
	c := jwtauth.Claims(top)
	if raw, ok := top[extMember]; ok && len(raw) > 0 && raw[0] == '{' {
		var ext map[string]json.RawMessage
		if json.Unmarshal(raw, &ext) == nil {
			for name, v := range ext {
				if _, present := c[name]; !present && !registered[name] {
					c[name] = v
				}
			}
		}
	}
	return c, nil, nil
}

// checkTokenKind refuses what is not an access token: a token_use other
// than access_token (Hydra, Cognito), or a token_type naming a refresh
// token. Either member of another type than string is refused too.
func checkTokenKind(top map[string]json.RawMessage) *jwtauth.Error {
	if raw, ok := top["token_use"]; ok {
		if s, ok := jsonscan.String(raw); !ok || s != "access_token" {
			return errRefreshToken
		}
	}
	if raw, ok := top["token_type"]; ok {
		s, ok := jsonscan.String(raw)
		if !ok || strings.Contains(strings.ToLower(s), "refresh") {
			return errRefreshToken
		}
	}
	return nil
}
