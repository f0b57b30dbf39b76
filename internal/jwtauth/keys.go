package jwtauth

// This file, keyrules.go, verify.go and assertion.go are the only ones of
// the module that import jwx (tests, jwtauthtest and internal/dpop's
// proof.go aside), so that a new major version of it touches this package
// only.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// minRSABits is the smallest RSA modulus a signing key may have.
const minRSABits = 2048

// verifyKey is one public signing key of a configured source.
type verifyKey struct {
	kid        string
	alg        string // the JWK's "alg", "" when it names none
	kty        string
	thumbprint string // RFC 7638: the key material, named so in the token cache
	key        any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable snapshot of one source's keys.
type keySet struct {
	keys []verifyKey
}

// skippedKey tells why a key of a document was left out of the set.
type skippedKey struct {
	index int
	kid   string
	why   string
}

// errNoUsableKeys is returned when a document parsed but held no key this
// module can verify with.
var errNoUsableKeys = errors.New("no usable signing key in the document")

// parseKeySet reads a JWKS document, a single JWK or PEM public keys. Keys
// of unsupported types (symmetric, encryption-only, unknown kty) are skipped
// and reported, not fatal to the set: identity providers publish keys for
// other uses beside the signing ones.
func parseKeySet(data []byte) (*keySet, []skippedKey, error) {
	data = bytes.TrimSpace(data)
	var raws []json.RawMessage
	switch {
	case bytes.HasPrefix(data, []byte("-----BEGIN")):
		set, err := jwk.Parse(data, jwk.WithPEM(true))
		if err != nil {
			return nil, nil, fmt.Errorf("parsing PEM keys: %w", err)
		}
		for i := range set.Len() {
			k, _ := set.Key(i)
			buf, err := json.Marshal(k)
			if err != nil {
				return nil, nil, err
			}
			raws = append(raws, buf)
		}
	default:
		var doc struct {
			Keys *[]json.RawMessage `json:"keys"`
			Kty  string             `json:"kty"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, nil, fmt.Errorf("key set is not JSON: %w", err)
		}
		switch {
		case doc.Keys != nil:
			raws = *doc.Keys
		case doc.Kty != "":
			raws = []json.RawMessage{data}
		default:
			return nil, nil, errors.New(`key set has no "keys" member`)
		}
	}
	ks := &keySet{}
	var skipped []skippedKey
	for i, raw := range raws {
		vk, err := parseVerifyKey(raw)
		if err != nil {
			skipped = append(skipped, skippedKey{index: i, kid: vk.kid, why: err.Error()})
			continue
		}
		ks.keys = append(ks.keys, vk)
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errNoUsableKeys
	}
	return ks, skipped, nil
}

func parseVerifyKey(raw []byte) (verifyKey, error) {
	if err := CheckRSASize(raw); err != nil {
		var named struct {
			Kid string `json:"kid"`
		}
		_ = json.Unmarshal(raw, &named)
		return verifyKey{kid: named.Kid}, err
	}
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return verifyKey{}, fmt.Errorf("unsupported or malformed key: %w", err)
	}
	var vk verifyKey
	vk.kid, _ = k.KeyID()
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return vk, fmt.Errorf("key use %q is not sig", use)
	}
	// RFC 7517 §4.3: a key whose key_ops leaves out verify is not for us
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return vk, errors.New(`key_ops does not include "verify"`)
	}
	switch k.KeyType() {
	case jwa.RSA(), jwa.EC(), jwa.OKP():
	default:
		return vk, fmt.Errorf("key type %s cannot verify an asymmetric signature", k.KeyType())
	}
	if a, ok := k.Algorithm(); ok {
		vk.alg = a.String()
	}
	if vk.alg != "" && !AlgFitsKey(vk.alg, k) {
		return vk, fmt.Errorf("alg %q does not fit a key of type %s", logText(vk.alg, 32), k.KeyType())
	}
	// a private key published by mistake still verifies through its public half
	pub, err := jwk.PublicKeyOf(k)
	if err != nil {
		return vk, err
	}
	if err := jwk.Export(pub, &vk.key); err != nil {
		return vk, fmt.Errorf("exporting key: %w", err)
	}
	// RFC 7518 §3.3: RSA keys of 2048 bits or larger MUST be used. The
	// rule is ours, whatever the version of jwx accepts.
	if rk, ok := vk.key.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
		return vk, fmt.Errorf("RSA key of %d bits is shorter than %d", rk.N.BitLen(), minRSABits)
	}
	vk.kty = k.KeyType().String()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return vk, fmt.Errorf("thumbprint: %w", err)
	}
	vk.thumbprint = string(tp)
	return vk, nil
}

// candidates returns the keys a token with this alg and kid may have been
// signed with: the keys named by kid (every key when the token names none)
// whose own alg, if any, is the token's, exactly: a key published as EdDSA
// is not a candidate for an Ed25519 token, nor the reverse (RFC 9864 makes
// them distinct identifiers, and jwx compares them so too). jwx checks the
// key type and curve against the algorithm during verification.
func (ks *keySet) candidates(alg, kid string, dst []verifyKey) []verifyKey {
	for i := range ks.keys {
		if ks.keys[i].admits(alg, kid) {
			dst = append(dst, ks.keys[i])
		}
	}
	return dst
}

// admits reports whether k is a candidate for a token with this alg and
// kid: named by the kid (any key when the token names none), and its own
// alg, if any, exactly the token's. The miss path (candidates) and a
// token-cache hit (tokenCache.lookup) both decide by it.
func (k *verifyKey) admits(alg, kid string) bool {
	return (kid == "" || k.kid == kid) && (k.alg == "" || k.alg == alg)
}

// status lists the keys for the admin endpoint: nothing secret.
func (ks *keySet) status() []KeyStatus {
	out := make([]KeyStatus, 0, len(ks.keys))
	for _, k := range ks.keys {
		out = append(out, KeyStatus{Kid: k.kid, Alg: k.alg, Kty: k.kty})
	}
	return out
}

// kids lists the key IDs of the set, for logs.
func (ks *keySet) kids() []string {
	out := make([]string, 0, len(ks.keys))
	for _, k := range ks.keys {
		out = append(out, k.kid)
	}
	return out
}

// duplicateKid is a kid that several keys of one set share.
type duplicateKid struct {
	kid   string
	count int
}

// duplicateKids lists, in order of first appearance, the non-empty kids
// that name more than one key of the set. Such keys all stay in the set
// (candidates tries each); this is for a warning.
func (ks *keySet) duplicateKids() []duplicateKid {
	counts := make(map[string]int, len(ks.keys))
	var order []string
	for _, k := range ks.keys {
		if k.kid == "" {
			continue
		}
		if counts[k.kid]++; counts[k.kid] == 2 {
			order = append(order, k.kid)
		}
	}
	out := make([]duplicateKid, 0, len(order))
	for _, kid := range order {
		out = append(out, duplicateKid{kid: kid, count: counts[kid]})
	}
	return out
}

// SupportedAlgorithm reports whether jwx knows alg and it is an asymmetric
// signature algorithm; HMAC is refused outright so that a public key can
// never be used as an HMAC secret.
//
// Ed25519 is RFC 9864's fully-specified name for EdDSA on that curve. Its
// sibling Ed448 is not supported: jwx v3 verifies it only through a
// separate module built on cloudflare/circl, which this module does not
// link, and jwx does not parse Ed448 keys without it either.
func SupportedAlgorithm(alg string) bool {
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return false
	}
	switch a {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512(),
		jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.EdDSA(), jwa.EdDSAEd25519():
		return true
	}
	return false
}
