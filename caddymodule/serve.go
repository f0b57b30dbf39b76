package caddymodule

import (
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.KeepClientIdentityHeaders {
		scrubIdentityHeaders(r.Header)
	}
	// Request trailers are never forwarded, on any path: a backend that
	// merges them into headers would take X-Workspace-* or Authorization
	// from them. net/http fills the map it shares with this request when
	// the body ends; a nil map here is what every handler after this sees.
	r.Trailer = nil
	scrubPathOverrides(r.Header, h.path)
	switch matchRoute(r.URL.EscapedPath(), h.path) {
	case routeOther:
		return next.ServeHTTP(w, r)
	case routeRefused:
		return writeProblem(w, r, h.path, profile.NewProblem(http.StatusBadRequest, codeInvalidPath, profile.DetailInvalidPath, "", ""), "")
	}
	switch r.Method {
	case http.MethodGet, http.MethodPut:
	case http.MethodOptions:
		// CORS is someone else's job, but a token never rides along
		r.URL.RawQuery = jwtauth.WithoutTokenParams(r.URL.RawQuery)
		r.RequestURI = r.URL.RequestURI()
		return next.ServeHTTP(w, r)
	default:
		w.Header().Set("Allow", "GET, PUT")
		return writeEnvelope(w, http.StatusMethodNotAllowed, profile.Failed(profile.MethodNotAllowedItem()))
	}

	if d, ok := h.service.Store.(interface{ Enter() func() }); ok {
		defer d.Enter()() // the store closes after this request (internal/drain)
	}
	c, tok, aerr := h.authenticate(r)
	if aerr != nil {
		return writeAuthProblem(w, r, h.path, aerr)
	}
	if h.upstream != nil {
		return h.serveUpstream(w, r, c, tok)
	}

	if r.Method == http.MethodGet {
		return h.serveGet(w, r, c)
	}
	return h.servePut(w, r, c)
}

// authenticate extracts and verifies the token, sets the user
// placeholders, and refuses service accounts.
func (h *Handler) authenticate(r *http.Request) (jwtauth.Claims, string, *jwtauth.Error) {
	tok, aerr := jwtauth.ExtractToken(r, h.QueryToken == nil || *h.QueryToken)
	if aerr != nil {
		return nil, "", aerr
	}
	c, aerr := h.verifier.Verify(r.Context(), tok)
	if aerr != nil {
		return nil, "", aerr
	}
	// one rule for the profile key on every backend: what an import would
	// refuse as a UserId (too long, untrimmed, control characters) is no
	// subject either, so bolt and PostgreSQL never answer it differently
	subject := h.verifier.SubjectClaim()
	if sub, _ := c.Str(subject); len(profile.UserIDProblems(sub)) > 0 {
		return nil, "", jwtauth.InvalidToken(profile.DetailUnusableSubject)
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		setUserPlaceholders(repl, c, subject)
	}
	if h.isServiceAccount(c) {
		return nil, "", errServiceAccount
	}
	// .NET's FindFirst takes the first of two case spellings; this edge
	// would take another, so a token naming an identity claim twice
	// (sub and SUB, UserType and usertype) is refused.
	if len(c.Folded(subject)) > 1 || len(c.Folded(userTypeClaim)) > 1 {
		return nil, "", jwtauth.InvalidToken(profile.DetailIdentityClaimTwice)
	}
	return c, tok, nil
}

const userPlaceholderPrefix = "http.auth.user."

// setUserPlaceholders answers {http.auth.user.*} lazily from the claims, so
// a request pays for the claims it logs and no more.
func setUserPlaceholders(repl *caddy.Replacer, c jwtauth.Claims, subject string) {
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, userPlaceholderPrefix)
		if !ok {
			return nil, false
		}
		if name == "id" {
			name = subject
		}
		v, ok := c.Text(name)
		if !ok {
			return nil, false
		}
		return v, true
	})
}

// isServiceAccount reads the claim as ASP.NET does: every member whose name
// equals the configured claim ignoring case, every element of an array,
// and numbers by value, so that 2, 2.0, 2e0 and "2" all match a configured
// "2". Any match refuses the token.
func (h *Handler) isServiceAccount(c jwtauth.Claims) bool {
	for _, raw := range c.Folded(h.ServiceAccount.Claim) {
		values := []json.RawMessage{raw}
		if raw[0] == '[' {
			values = nil
			_ = json.Unmarshal(raw, &values)
		}
		for _, x := range values {
			for _, want := range h.ServiceAccount.Values {
				if claimValueIs(x, want) {
					return true
				}
			}
		}
	}
	return false
}

// claimValueIs compares a claim value (a JSON string or number) with a
// configured value: as strings, or as numbers when both read as numbers the
// way .NET's parsers read them (surrounding spaces, a leading + and leading
// zeros allowed), so that " 2", "+2", "02" and 2.0 all match "2".
func claimValueIs(raw json.RawMessage, want string) bool {
	s := jwtauth.RawText(raw)
	if s == want {
		return true
	}
	a, okA := looseNumber(s)
	b, okB := looseNumber(want)
	return okA && okB && a == b
}

// looseNumber reads s as a decimal number, as lenient backends do: spaces
// around it, a leading + and leading zeros are allowed; hex, Inf, NaN and
// underscores are not.
func looseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if t, ok := strings.CutPrefix(s, "+"); ok {
		s = t
	}
	if s == "" || strings.ContainsAny(s, "xXpP_iInN") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// userType is the UserType claim (its name compared ignoring case;
// authenticate refuses a token naming it twice), numbers in their
// canonical integer form: a token saying 1.0 or " 1" is an admin as one
// saying 1 is, and the backend never sees another spelling.
func userType(c jwtauth.Claims) (string, bool) {
	vals := c.Folded(userTypeClaim)
	if len(vals) == 0 {
		return "", false
	}
	s := jwtauth.RawText(vals[0])
	if f, ok := looseNumber(s); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	return strings.TrimSpace(s), true
}

// identity is what the profile service needs to know of the caller.
func (h *Handler) identity(c jwtauth.Claims) profile.Identity {
	str := func(name string) string { s, _ := c.Str(name); return s }
	id := profile.Identity{
		UserID:            str(h.verifier.SubjectClaim()),
		PreferredUserName: str("preferred_username"),
		Email:             str("email"),
		GivenName:         str("given_name"),
		FamilyName:        str("family_name"),
	}
	if v, ok := userType(c); ok {
		switch v {
		case "1":
			id.UserType = profile.UserTypeAdmin
		case "2":
			id.UserType = profile.UserTypeServiceAccount
		}
	}
	return id
}

func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, c jwtauth.Claims) error {
	p, err := h.service.Get(r.Context(), h.identity(c))
	if err != nil {
		return h.writeServiceError(w, r, err)
	}
	etag := p.ETag()
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && profile.MatchETag(inm, etag, true) {
		countOutcome(outcomeNotModified)
		putNotModified(w, http.StatusNotModified)
		return nil
	}
	return writeEnvelope(w, http.StatusOK, profile.OK(p))
}

func (h *Handler) servePut(w http.ResponseWriter, r *http.Request, c jwtauth.Claims) error {
	req, warnings, ok := h.readUpdate(w, r)
	if !ok {
		return nil
	}
	res, err := h.service.Put(r.Context(), h.identity(c), r.Header.Get("If-Match"), req)
	if err != nil {
		return h.writeServiceError(w, r, err)
	}
	if !res.Changed {
		warnings = append(warnings, profile.NoChangesWarning())
	}
	w.Header().Set("ETag", res.Profile.ETag())
	return writeEnvelope(w, http.StatusOK, profile.OK(res.Profile, warnings...))
}

// readUpdate reads, binds and validates a PUT body, the same in both
// modes. When the body is refused it writes the answer and returns ok=false.
func (h *Handler) readUpdate(w http.ResponseWriter, r *http.Request) (req profile.UpdateRequest, warnings []profile.Item, ok bool) {
	refuse := func(status int, env profile.Envelope) (profile.UpdateRequest, []profile.Item, bool) {
		_ = writeEnvelope(w, status, env)
		return profile.UpdateRequest{}, nil, false
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return refuse(http.StatusUnsupportedMediaType, profile.Failed(profile.UnsupportedMediaTypeItem()))
	}
	if r.ContentLength > h.MaxBody {
		return refuse(http.StatusRequestEntityTooLarge, profile.Failed(profile.PayloadTooLargeItem(h.MaxBody)))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.MaxBody+1))
	if err != nil {
		return refuse(http.StatusBadRequest, profile.Failed(profile.BodyUnreadableItem()))
	}
	if int64(len(body)) > h.MaxBody {
		return refuse(http.StatusRequestEntityTooLarge, profile.Failed(profile.PayloadTooLargeItem(h.MaxBody)))
	}
	req, warnings, errs := profile.BindUpdate(body)
	req, verrs := req.Validate()
	if errs = append(errs, verrs...); len(errs) > 0 {
		env := profile.Failed(errs...)
		env.Warnings = append(env.Warnings, warnings...)
		return refuse(http.StatusBadRequest, env)
	}
	return req, warnings, true
}

// isJSONContentType accepts application/json and application/*+json, in
// UTF-8 (the only charset JSON may be exchanged in, RFC 8259).
func isJSONContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

func (h *Handler) writeServiceError(w http.ResponseWriter, r *http.Request, err error) error {
	if r.Context().Err() != nil {
		// the client hung up: the store was asked to stop, not broken
		if ce := h.logger.Check(zapcore.DebugLevel, "client closed the request during a store call"); ce != nil {
			ce.Write()
		}
		writeClientClosed(w)
		return nil
	}
	status, item := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
		// the error text is for operators; the client gets a generic item
		h.storeErrors.log(h.logger, err)
	}
	return writeEnvelope(w, status, profile.Failed(item))
}

// storeErrorInterval is the least time between two log lines about store
// failures: during an outage every request fails, and one line per
// interval, with the count of the others, says as much.
const storeErrorInterval = 10 * time.Second

// errorLog writes an error line at most once per storeErrorInterval and
// counts the ones it held back. It is safe for concurrent use.
type errorLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
	now        func() time.Time // nil: time.Now
}

func (l *errorLog) log(logger *zap.Logger, err error) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	l.mu.Lock()
	t := now()
	if !l.last.IsZero() && t.Sub(l.last) < storeErrorInterval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = t, 0
	l.mu.Unlock()
	if c := logger.Check(zapcore.ErrorLevel, "profile store failed"); c != nil {
		c.Write(zap.Error(err), zap.Int("failures_not_logged", suppressed), zap.Duration("interval", storeErrorInterval))
	}
}

func setCommonHeaders(hdr http.Header, contentType string) {
	hdr.Set("Content-Type", contentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// The writers below count the response they write, its outcome read off
// its code in outcomeOf (outcomes.go); the put* ones only write, for an
// answer counted otherwise.

// writeEnvelope counts and writes an envelope.
func writeEnvelope(w http.ResponseWriter, status int, env profile.Envelope) error {
	countOutcome(envelopeOutcome(env))
	return putEnvelope(w, status, env)
}

// writeClientClosed counts and writes the 499 of a client that hung up;
// nobody reads it, but the access log does.
func writeClientClosed(w http.ResponseWriter) {
	countOutcome(outcomeClientClosed)
	w.WriteHeader(499)
}

// putNotModified writes a 304 (or another status without a body).
func putNotModified(w http.ResponseWriter, status int) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

func putEnvelope(w http.ResponseWriter, status int, env profile.Envelope) error {
	body, err := json.Marshal(env)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	setCommonHeaders(w.Header(), "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// writeAuthProblem answers an authentication failure with problem details.
func writeAuthProblem(w http.ResponseWriter, r *http.Request, instance string, e *jwtauth.Error) error {
	status := authStatus(e)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	return writeProblem(w, r, instance, profile.NewProblem(status, e.Code, e.Desc, "", ""), wwwAuthenticate(e))
}

// retryAfterSeconds is the Retry-After of every 503 the route answers.
const retryAfterSeconds = "5"

// writeProblem writes p with the route's own path as its instance (never
// the client's spelling of it) and Caddy's request ID as its traceId.
func writeProblem(w http.ResponseWriter, r *http.Request, instance string, p profile.Problem, wwwAuthenticate string) error {
	countOutcome(problemOutcome(p.Code))
	return putProblem(w, r, instance, p, wwwAuthenticate)
}

func putProblem(w http.ResponseWriter, r *http.Request, instance string, p profile.Problem, wwwAuthenticate string) error {
	p.Instance = instance
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		p.TraceID, _ = repl.GetString("http.request.uuid")
	}
	body, err := json.Marshal(p)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	setCommonHeaders(hdr, "application/problem+json")
	if wwwAuthenticate != "" {
		hdr.Set("WWW-Authenticate", wwwAuthenticate)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
	return nil
}
