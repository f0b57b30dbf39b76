package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// authenticate is the route's authentication decision (internal/authn)
// and what Caddy makes of it: the user placeholders. They are set when the
// caller's credential verified and names a usable subject, a refused
// service account's included, so the access log names who was refused.
func (h *Handler) authenticate(r *http.Request) (authn.Principal, *authn.Refusal) {
	p, ref := h.authn.Authenticate(r)
	if p.Subject != "" {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			setUserPlaceholders(repl, p)
		}
	}
	return p, ref
}

// authenticator is the route's authentication decision, built from the
// provisioned token verifier (none without a key source), the
// introspection client, the API-key store's verifier (none without
// api_keys: API keys are refused) and the DPoP option.
func (h *Handler) authenticator() *authn.Authenticator {
	cfg := authn.Config{
		Subject:        h.SubjectClaim,
		AllowQuery:     h.QueryToken == nil || *h.QueryToken,
		ServiceAccount: authn.ServiceAccount{Claim: h.ServiceAccount.Claim, Values: h.ServiceAccount.Values},
	}
	if h.verifier != nil {
		cfg.JWT = h.verifier
	}
	if h.introspection != nil {
		cfg.Introspection = h.introspection
	}
	if h.keys != nil {
		cfg.APIKeys = h.keys
	}
	if h.APIKeys != nil {
		cfg.APIKeyHeader, cfg.APIKeyPrefix = h.APIKeys.header(), h.APIKeys.prefix()
	}
	if d := h.DPoP; d.on() {
		cfg.DPoP = authn.DPoP{Mode: d.mode(), Proofs: d.verifier, RequestTarget: d.requestTarget}
	}
	return authn.New(cfg)
}

const userPlaceholderPrefix = "http.auth.user."

// setUserPlaceholders answers {http.auth.user.*} lazily from the
// principal, so a request pays for the claims it logs and no more: id is
// the subject, method how the caller authenticated, key_id the API key's
// id ("" for other methods), any other name a claim.
func setUserPlaceholders(repl *caddy.Replacer, p authn.Principal) {
	c, sub, method, keyID := p.Claims, p.Subject, p.Method, p.KeyID
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, userPlaceholderPrefix)
		if !ok {
			return nil, false
		}
		switch name {
		case "id":
			return sub, true
		case "method":
			return string(method), true
		case "key_id":
			return keyID, true
		}
		v, ok := c.Text(name)
		if !ok {
			return nil, false
		}
		return v, true
	})
}

// identity is what the profile service needs to know of the caller.
func identity(p authn.Principal) profile.Identity {
	str := func(name string) string { s, _ := p.Claims.Str(name); return s }
	id := profile.Identity{
		UserID:            p.Subject,
		PreferredUserName: str("preferred_username"),
		Email:             str("email"),
		GivenName:         str("given_name"),
		FamilyName:        str("family_name"),
	}
	if v, ok := authn.UserType(p.Claims); ok {
		switch v {
		case "1":
			id.UserType = profile.UserTypeAdmin
		case "2":
			id.UserType = profile.UserTypeServiceAccount
		}
	}
	return id
}
