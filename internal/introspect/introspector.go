package introspect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Introspector verifies opaque tokens with the introspection endpoint.
// It is safe for concurrent use; New starts nothing, and Close ends every
// call it has in progress.
type Introspector struct {
	cfg    Config
	caller *caller
	rules  jwtauth.ClaimRules
	cache  *lru.Cache[[sha256.Size]byte, entry]
	slots  chan struct{} // one per call in progress
	life   context.Context
	stop   context.CancelFunc
	calls  sync.WaitGroup

	// signed checks signed answers: Config.Signed, or the newest given to
	// SetSigned
	signed atomic.Pointer[SignedVerifier]

	mu      sync.Mutex
	flights map[[sha256.Size]byte]*flight
	closed  bool
	health  health
}

// entry is a cached answer: the claims of an active token, or the refusal
// an answer earned whatever the rules; used until until.
type entry struct {
	claims  jwtauth.Claims
	refusal *jwtauth.Error
	until   time.Time
}

// flight is one call in progress, shared by every caller with its token.
// claims and refusal are set before done is closed.
type flight struct {
	done    chan struct{}
	claims  jwtauth.Claims
	refusal *jwtauth.Error
}

// New checks cfg (Check), reads the client key if any, and builds the
// introspector. It makes no call.
func New(cfg Config) (*Introspector, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c, err := newCaller(cfg)
	if err != nil {
		return nil, err
	}
	cache, _ := lru.New[[sha256.Size]byte, entry](cfg.CacheSize) // errors only for size <= 0
	in := &Introspector{
		cfg:     cfg,
		caller:  c,
		rules:   claimRules(cfg),
		cache:   cache,
		slots:   make(chan struct{}, cfg.MaxInFlight),
		flights: map[[sha256.Size]byte]*flight{},
	}
	in.life, in.stop = context.WithCancel(context.Background())
	if cfg.Signed != nil {
		in.signed.Store(&cfg.Signed)
	}
	return in, nil
}

// Close ends the calls in progress (their callers get
// IntrospectionUnavailable) and waits for them; later calls to Verify are
// refused so. It is safe to call more than once.
func (in *Introspector) Close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.stop()
	in.calls.Wait()
	in.caller.client.CloseIdleConnections()
}

// errMalformed refuses what cannot be an opaque token before any call.
var errMalformed = jwtauth.InvalidToken("The token is malformed.")

// Verify returns the claims of an active token that passes the claim
// rules, or the refusal to answer: the token's own (InvalidToken,
// TokenExpired, InvalidAudience, ...) or IntrospectionUnavailable when the
// endpoint gave no usable answer. The claims are shared with the cache:
// callers must not modify them.
func (in *Introspector) Verify(ctx context.Context, tok string) (jwtauth.Claims, *jwtauth.Error) {
	return in.verify(ctx, tok, &in.rules)
}

// verify is Verify with the claim rules of a route (Route).
func (in *Introspector) verify(ctx context.Context, tok string, rules *jwtauth.ClaimRules) (jwtauth.Claims, *jwtauth.Error) {
	if tok == "" || len(tok) > jwtauth.MaxTokenLen {
		return nil, errMalformed
	}
	key := sha256.Sum256([]byte(tok))
	now := in.cfg.Now()
	if e, ok := in.cache.Get(key); ok && now.Before(e.until) {
		if e.refusal != nil {
			in.observeLookup(CacheHitNegative)
		} else {
			in.observeLookup(CacheHitPositive)
		}
		return decide(rules, e.claims, e.refusal, now)
	}
	in.observeLookup(CacheMiss)
	f := in.join(ctx, key, tok)
	select {
	case <-f.done:
	case <-ctx.Done():
		// this caller left; the call goes on for the others
		return nil, jwtauth.ErrIntrospectionUnavailable
	}
	return decide(rules, f.claims, f.refusal, in.cfg.Now())
}

// decide applies the claim rules to an answer, fresh or cached alike, so
// a cached answer never passes what a fresh one would not.
func decide(rules *jwtauth.ClaimRules, c jwtauth.Claims, refusal *jwtauth.Error, now time.Time) (jwtauth.Claims, *jwtauth.Error) {
	if refusal != nil {
		return nil, refusal
	}
	if aerr := rules.Check(c, now); aerr != nil {
		return nil, aerr
	}
	if aerr := rules.CheckClient(c); aerr != nil {
		return nil, aerr
	}
	return c, nil
}

// join returns the flight of tok: the one in progress, a finished one
// from an answer cached since the caller looked, or a new one started on
// a context detached from the caller's (its values kept, its end not), so
// that a caller hanging up never fails those waiting with it. While the
// endpoint is failing fast, or once closed, the flight is finished and
// unavailable.
func (in *Introspector) join(ctx context.Context, key [sha256.Size]byte, tok string) *flight {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.cfg.Now()
	switch f, ok := in.flights[key]; {
	case ok:
		return f
	case in.closed:
		return doneFlight(nil, jwtauth.ErrIntrospectionUnavailable)
	}
	// a flight that ended between the caller's look and this lock cached
	// its answer before it left the map
	if e, ok := in.cache.Peek(key); ok && now.Before(e.until) {
		return doneFlight(e.claims, e.refusal)
	}
	if now.Before(in.health.until) {
		in.observe(ResultFailFast, 0)
		return doneFlight(nil, jwtauth.ErrIntrospectionUnavailable)
	}
	f := &flight{done: make(chan struct{})}
	in.flights[key] = f
	in.calls.Add(1)
	go in.fly(context.WithoutCancel(ctx), key, tok, f)
	return f
}

func doneFlight(c jwtauth.Claims, refusal *jwtauth.Error) *flight {
	f := &flight{done: make(chan struct{}), claims: c, refusal: refusal}
	close(f.done)
	return f
}

// fly makes the call of f, caches what may be cached, and lands f.
func (in *Introspector) fly(parent context.Context, key [sha256.Size]byte, tok string, f *flight) {
	defer in.calls.Done()
	ctx, cancel := context.WithTimeout(parent, in.cfg.Timeout)
	defer cancel()
	defer context.AfterFunc(in.life, cancel)()
	c, refusal, ttl := in.introspect(ctx, key, tok)
	in.mu.Lock()
	if ttl > 0 {
		in.cache.Add(key, entry{claims: c, refusal: refusal, until: in.cfg.Now().Add(ttl)})
	}
	delete(in.flights, key)
	in.mu.Unlock()
	f.claims, f.refusal = c, refusal
	close(f.done)
}

// introspect makes one call: a free slot first (waiting at most until
// ctx ends), then the request. It returns the answer and how long it may
// be cached (0: not at all).
func (in *Introspector) introspect(ctx context.Context, key [sha256.Size]byte, tok string) (jwtauth.Claims, *jwtauth.Error, time.Duration) {
	select {
	case in.slots <- struct{}{}:
	case <-ctx.Done():
		in.observe(ResultBusy, 0)
		in.cfg.Logger.Warn("introspection: no call slot freed in time", zap.Int("max_in_flight", cap(in.slots)),
			zap.String("token_sha256", hashPrefix(key)))
		return nil, jwtauth.ErrIntrospectionUnavailable, 0
	}
	defer func() { <-in.slots }()
	start := time.Now()
	body, err := in.caller.call(ctx, tok)
	var c jwtauth.Claims
	var refusal *jwtauth.Error
	if err == nil {
		c, refusal, err = in.read(ctx, body)
	}
	took := time.Since(start)
	now := in.cfg.Now()
	if err != nil {
		in.failed(now, key, err)
		in.observe(ResultFailed, took)
		return nil, jwtauth.ErrIntrospectionUnavailable, 0
	}
	in.succeeded(now)
	if refusal != nil {
		in.observe(ResultInactive, took)
		if refusal == errNotStrict {
			return nil, refusal, 0 // no verdict on the token: asked again next time
		}
		return nil, refusal, in.cfg.NegativeTTL
	}
	in.observe(ResultActive, took)
	ttl := in.cfg.CacheTTL
	if exp, ok := jsonscan.Float(c["exp"]); ok {
		ttl = min(ttl, time.Duration((exp-float64(now.UnixNano())/1e9)*float64(time.Second)))
	}
	return c, nil, ttl
}

// read turns an answer's body into claims or a refusal; an error means
// the body is no answer (the endpoint failed).
func (in *Introspector) read(ctx context.Context, body []byte) (jwtauth.Claims, *jwtauth.Error, error) {
	if in.cfg.Response == ResponseJWT {
		return in.readSigned(ctx, body)
	}
	return parseAnswer(body)
}

// hashPrefix is how a token appears in a log line: the first 8 hex digits
// of its SHA-256, enough to tell the lines of one token apart, far too
// few to find it.
func hashPrefix(key [sha256.Size]byte) string { return hex.EncodeToString(key[:4]) }

func (in *Introspector) observe(r Result, took time.Duration) {
	if in.cfg.Observer != nil {
		in.cfg.Observer.Called(r, took)
	}
}

func (in *Introspector) observeLookup(r CacheResult) {
	if in.cfg.Observer != nil {
		in.cfg.Observer.CacheLookup(r)
	}
}

// errorText is a failure as logs and Status show it: the status of an
// answer, else the error's text, bounded.
func errorText(err error) string {
	var st errStatus
	if errors.As(err, &st) {
		return st.Error() + " (" + http.StatusText(int(st)) + ")"
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
