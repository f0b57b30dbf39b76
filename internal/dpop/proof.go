package dpop

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// MaxProofLen is the largest DPoP header value read (8 KiB, as a token).
const MaxProofLen = jwtauth.MaxTokenLen

// Defaults of Config.
const (
	// DefaultWindow is how old a proof may be: iat at most this far in
	// the past (plus Leeway).
	DefaultWindow = 60 * time.Second
	// DefaultFuture is how far ahead of this clock iat may be (plus
	// Leeway).
	DefaultFuture = 5 * time.Second
)

// typ is the header typ of a proof, compared exactly (RFC 9449 §4.2).
const typ = "dpop+jwt"

// minRSABits: RFC 7518 §3.3, as for the token's keys.
const minRSABits = 2048

// Config is what a Verifier checks proofs against.
type Config struct {
	// Algorithms accepted for proofs; each must pass
	// jwtauth.SupportedAlgorithm. Empty: jwtauth.DefaultAlgorithms.
	Algorithms []string
	// Window is how old a proof may be; 0 is DefaultWindow.
	Window time.Duration
	// Future is how far ahead iat may be; 0 is DefaultFuture.
	Future time.Duration
	// Leeway is added to both ends of the window (clock skew).
	Leeway time.Duration
	// Replay remembers used proofs; nil is a cache of its own of
	// DefaultReplayCacheSize. Verifiers with different windows may share
	// one: New makes it keep entries for this verifier's window at least.
	Replay *ReplayCache
	// Shared, when set, is the record of used proofs shared by the nodes
	// of a cluster, which Commit asks after Replay (see SharedReplay).
	Shared SharedReplay
	// Now is the verifier's clock; nil is time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs. It is safe for concurrent use.
type Verifier struct {
	algorithms map[string]jwa.SignatureAlgorithm
	algList    []string
	past       time.Duration // Window + Leeway
	future     time.Duration // Future + Leeway
	replay     *ReplayCache
	shared     SharedReplay
	now        func() time.Time
}

// Error is a refusal of a proof: Desc is a sentence for the client (a
// problem's detail, a challenge's error_description). It never holds the
// proof, the token or a value of either.
type Error struct {
	Desc string
	// KeyMismatch: the proof's key is not the one Request.Thumbprint
	// names (the token is bound to another key).
	KeyMismatch bool
	// Unavailable: the proof could not be checked for replay (the shared
	// record failed); it is neither accepted nor known to be bad.
	Unavailable bool
}

func (e *Error) Error() string { return "invalid_dpop_proof: " + e.Desc }

func refuse(desc string) *Error { return &Error{Desc: desc} }

// New checks cfg (Check) and builds its verifier.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	v := &Verifier{algorithms: map[string]jwa.SignatureAlgorithm{}, replay: cfg.Replay, shared: cfg.Shared, now: cfg.Now}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = jwtauth.DefaultAlgorithms
	}
	for _, a := range algs {
		if _, dup := v.algorithms[a]; !dup {
			v.algList = append(v.algList, a)
		}
		v.algorithms[a], _ = jwa.LookupSignatureAlgorithm(a)
	}
	window, future := cfg.Window, cfg.Future
	if window == 0 {
		window = DefaultWindow
	}
	if future == 0 {
		future = DefaultFuture
	}
	v.past, v.future = window+cfg.Leeway, future+cfg.Leeway
	if v.replay == nil {
		v.replay = NewReplayCache(DefaultReplayCacheSize)
	}
	v.replay.keepAtLeast(v.past)
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Algorithms are the accepted algorithms, in configured order (a
// challenge's algs).
func (v *Verifier) Algorithms() []string { return v.algList }

// Request is what a proof is checked against.
type Request struct {
	// Proofs are the values of the request's DPoP header fields.
	Proofs []string
	// Method is the request's method, compared with htm exactly.
	Method string
	// URI is the absolute URI the client addressed (scheme, host, path;
	// a query is ignored), compared with htu after NormalizeHTU.
	URI string
	// AccessToken is the token the proof comes with; its hash must be
	// ath. Empty: no token, and ath is not read.
	AccessToken string
	// Thumbprint, when set, is the key the token is bound to (cnf.jkt):
	// a proof by another key is refused with KeyMismatch before its
	// signature is checked, so a holder of someone else's bound token
	// cannot make each request cost a verification with a key of its own
	// choosing.
	Thumbprint string
}

// Proof is a proof that passed Check.
type Proof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url: what a bound token's cnf.jkt must equal.
	Thumbprint string
	iat        float64
	replayKey  [sha256.Size]byte
}

// Check applies RFC 9449 §4.3 to one request, except the replay check,
// which Commit makes once the caller has accepted the proof (so that a
// proof refused for its key binding is not spent). The signature is
// checked before any claim, so a forged proof is refused whatever its
// claims say.
func (v *Verifier) Check(req Request) (Proof, *Error) {
	switch {
	case len(req.Proofs) == 0:
		return Proof{}, refuse("The request has no DPoP proof.")
	case len(req.Proofs) > 1:
		return Proof{}, refuse("The request has more than one DPoP header.")
	}
	proof := req.Proofs[0]
	if len(proof) > MaxProofLen {
		return Proof{}, refuse("The DPoP proof is larger than 8 KiB.")
	}
	if !jwtauth.IsCompactJWS(proof) {
		return Proof{}, refuse("The DPoP proof is not a compact JWS.")
	}
	hdrPart, _, _ := strings.Cut(proof, ".")
	h, derr := v.parseHeader(hdrPart)
	if derr != nil {
		return Proof{}, derr
	}
	if req.Thumbprint != "" && subtle.ConstantTimeCompare([]byte(h.thumbprint), []byte(req.Thumbprint)) != 1 {
		return Proof{}, &Error{Desc: "The DPoP proof is signed by another key than the token is bound to.", KeyMismatch: true}
	}
	payload, err := jws.VerifyCompactFast(h.key, []byte(proof), h.alg)
	if err != nil {
		return Proof{}, refuse("The DPoP proof signature is invalid.")
	}
	c, derr := parseClaims(payload)
	if derr != nil {
		return Proof{}, derr
	}
	if c.htm != req.Method {
		return Proof{}, refuse("The DPoP proof is for another HTTP method (htm).")
	}
	want, ok := NormalizeHTU(req.URI)
	got, ok2 := NormalizeHTU(c.htu)
	if !ok || !ok2 || got != want {
		return Proof{}, refuse("The DPoP proof is for another URI (htu).")
	}
	now := float64(v.now().UnixNano()) / 1e9
	if c.iat < now-v.past.Seconds() {
		return Proof{}, refuse("The DPoP proof is too old (iat); make a new one for each request.")
	}
	if c.iat > now+v.future.Seconds() {
		return Proof{}, refuse("The DPoP proof is issued in the future (iat).")
	}
	if req.AccessToken != "" {
		sum := sha256.Sum256([]byte(req.AccessToken))
		ath := base64.RawURLEncoding.EncodeToString(sum[:])
		if !c.hasATH {
			return Proof{}, refuse("The DPoP proof has no ath claim for the access token.")
		}
		if subtle.ConstantTimeCompare([]byte(c.ath), []byte(ath)) != 1 {
			return Proof{}, refuse("The DPoP proof is for another access token (ath).")
		}
	}
	// jti is scoped to the key and the URI: another client's proof can
	// never spend this one's jti, and the key binds it to its maker
	replayKey := sha256.Sum256([]byte(h.thumbprint + "\x00" + want + "\x00" + c.jti))
	return Proof{Thumbprint: h.thumbprint, iat: c.iat, replayKey: replayKey}, nil
}

// Commit spends a checked proof: a proof seen within its window is
// refused, as is one too old for the replay cache to vouch for, and one of
// a key with no proof in the cache when the cache is full (see
// ReplayCache). With a shared record (Config.Shared), a proof the replay
// cache takes is then spent there too (see commitShared).
func (v *Verifier) Commit(ctx context.Context, p Proof) *Error {
	now := float64(v.now().UnixNano()) / 1e9
	switch v.replay.use(p.Thumbprint, p.replayKey, p.iat, now) {
	case useReplayed:
		return alreadyUsed()
	case useTooOld:
		return refuse("The DPoP proof is too old to be checked for replay; make a new one.")
	case useFull:
		return refuse("The DPoP replay cache is full of other clients' recent proofs; try again later.")
	}
	return v.commitShared(ctx, p)
}

// Verify is Check and then Commit: the thumbprint of a proof that passed
// every rule, replay included.
func (v *Verifier) Verify(ctx context.Context, req Request) (string, *Error) {
	p, err := v.Check(req)
	if err != nil {
		return "", err
	}
	if err := v.Commit(ctx, p); err != nil {
		return "", err
	}
	return p.Thumbprint, nil
}

// header is what a proof's JOSE header says.
type header struct {
	alg        jwa.SignatureAlgorithm
	key        any // the public key of jwk, as jws verifies with it
	thumbprint string
}

// privateMembers are the JWK members of private and symmetric keys
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2): a proof carries a public
// key only (RFC 9449 §4.3 check 7).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func (v *Verifier) parseHeader(seg string) (header, *Error) {
	var h header
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || jsonscan.CheckStrict(raw) != nil {
		return h, refuse("The DPoP proof header is malformed or names a member twice.")
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return h, refuse("The DPoP proof header is malformed or names a member twice.")
	}
	if t, ok := jsonscan.String(m["typ"]); !ok || t != typ {
		return h, refuse("The DPoP proof header typ is not dpop+jwt.")
	}
	algName, _ := jsonscan.String(m["alg"])
	alg, ok := v.algorithms[algName]
	if !ok {
		return h, refuse("The DPoP proof algorithm is not accepted.")
	}
	h.alg = alg
	if _, ok := m["crit"]; ok {
		return h, refuse("The DPoP proof has critical header parameters.")
	}
	rawKey, ok := m["jwk"]
	if !ok || len(rawKey) == 0 || rawKey[0] != '{' {
		return h, refuse("The DPoP proof header has no jwk.")
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(rawKey, &members) != nil {
		return h, refuse("The DPoP proof key is malformed.")
	}
	for _, name := range privateMembers {
		if _, ok := members[name]; ok {
			return h, refuse("The DPoP proof key must be a public key.")
		}
	}
	if jwtauth.CheckRSASize(rawKey) != nil {
		return h, refuse("The DPoP proof key is an RSA key shorter than 2048 bits.")
	}
	k, err := jwk.ParseKey(rawKey)
	if err != nil {
		return h, refuse("The DPoP proof key is malformed.")
	}
	if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
		return h, refuse("The DPoP proof key must be a public key.")
	}
	if a, ok := k.Algorithm(); ok && a.String() != algName {
		return h, refuse("The DPoP proof key does not fit the algorithm.")
	}
	if !jwtauth.AlgFitsKey(algName, k) {
		return h, refuse("The DPoP proof key does not fit the algorithm.")
	}
	if err := jwk.Export(k, &h.key); err != nil {
		return h, refuse("The DPoP proof key is malformed.")
	}
	if rk, ok := h.key.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits { // whatever jwx parsed
		return h, refuse("The DPoP proof key is an RSA key shorter than 2048 bits.")
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return h, refuse("The DPoP proof key is malformed.")
	}
	h.thumbprint = base64.RawURLEncoding.EncodeToString(tp)
	return h, nil
}

// claims are the proof's claims this verifier reads.
type claims struct {
	jti, htm, htu, ath string
	hasATH             bool
	iat                float64
}

func parseClaims(payload []byte) (claims, *Error) {
	var c claims
	if jsonscan.CheckStrict(payload) != nil {
		return c, refuse("The DPoP proof claims are not strict JSON: invalid UTF-8, a control character, a lone surrogate or a member named twice.")
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil || m == nil {
		return c, refuse("The DPoP proof claims are malformed.")
	}
	var ok bool
	if c.jti, ok = jsonscan.String(m["jti"]); !ok || c.jti == "" {
		return c, refuse("The DPoP proof has no string jti claim.")
	}
	if c.htm, ok = jsonscan.String(m["htm"]); !ok {
		return c, refuse("The DPoP proof has no string htm claim.")
	}
	if c.htu, ok = jsonscan.String(m["htu"]); !ok {
		return c, refuse("The DPoP proof has no string htu claim.")
	}
	if c.iat, ok = jsonscan.Float(m["iat"]); !ok {
		return c, refuse("The DPoP proof has no numeric iat claim.")
	}
	if raw, present := m["ath"]; present {
		if c.ath, ok = jsonscan.String(raw); !ok {
			return c, refuse("The DPoP proof has a non-string ath claim.")
		}
		c.hasATH = true
	}
	return c, nil
}
