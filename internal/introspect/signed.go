package introspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// maxSignedAge is how old a signed answer's iat may be (beyond the
// leeway): it answers the call just made, so an older one is a replay.
const maxSignedAge = time.Minute

// readSigned reads a signed answer (RFC 9701): a JWT of typ
// token-introspection+jwt, signed with one of the issuer's keys, naming a
// configured issuer as iss and this client as aud, issued just now, and
// holding the answer in token_introspection. Any of that wrong is a
// failed call, not a refusal of the token: the document cannot be
// trusted, so it says nothing of the token either way.
func (in *Introspector) readSigned(ctx context.Context, body []byte) (jwtauth.Claims, *jwtauth.Error, error) {
	payload, aerr := (*in.signed.Load()).VerifySigned(ctx, string(bytes.TrimSpace(body)), signedTyp)
	if aerr != nil {
		return nil, nil, errors.New("signed answer refused: " + aerr.Desc)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(payload, &doc); err != nil || doc == nil {
		return nil, nil, errors.New("signed answer: the payload is not a JSON object")
	}
	if iss, _ := jsonscan.String(doc["iss"]); !slices.Contains(in.cfg.Issuers, iss) {
		return nil, nil, errors.New("signed answer: iss is not a configured issuer")
	}
	if !namesAudience(doc["aud"], in.cfg.ClientID) {
		return nil, nil, errors.New("signed answer: aud is not this client")
	}
	iat, ok := jsonscan.Float(doc["iat"])
	now := float64(in.cfg.Now().UnixNano()) / 1e9
	leeway := in.rules.Leeway.Seconds()
	if !ok || iat > now+leeway || iat < now-leeway-maxSignedAge.Seconds() {
		return nil, nil, errors.New("signed answer: iat is missing or not fresh")
	}
	raw := doc["token_introspection"]
	var top map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &top) != nil {
		return nil, nil, errors.New("signed answer: token_introspection is not an object")
	}
	return answerClaims(top)
}

// namesAudience: aud is the one string want, or an array holding it.
func namesAudience(raw json.RawMessage, want string) bool {
	if s, ok := jsonscan.String(raw); ok {
		return s == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}
