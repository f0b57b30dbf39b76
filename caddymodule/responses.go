package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

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

// setCommonHeaders sets the headers of every answer with a body. The names
// are written in their canonical form, which is what Header.Set would make
// of them, without its canonicalization on every response.
func setCommonHeaders(hdr http.Header, contentType string) {
	hdr["Content-Type"] = []string{contentType}
	setNoStoreHeaders(hdr)
}

// setNoStoreHeaders sets the headers of every answer, a 304 included.
func setNoStoreHeaders(hdr http.Header) {
	hdr["Cache-Control"] = []string{"no-store"}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	varyAuthorization(hdr)
}

// varyAuthorization says that the answer depends on the caller's
// credentials (RFC 9110 section 12.5.5; docs/responses.md): no-store already
// keeps conforming caches from storing it, and Vary also keeps a cache that
// ignores no-store from handing one caller's profile to another. A
// backend's own Vary (upstream mode) is kept, with Authorization added
// unless it names it or "*".
func varyAuthorization(hdr http.Header) {
	for _, v := range hdr["Vary"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name == "*" || strings.EqualFold(name, "Authorization") {
				return
			}
		}
	}
	hdr["Vary"] = append(hdr["Vary"], "Authorization")
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
	// a 304 carries the Vary its 200 would (RFC 9110 section 15.4.5)
	setNoStoreHeaders(w.Header())
	w.WriteHeader(status)
}

func putEnvelope(w http.ResponseWriter, status int, env profile.Envelope) error {
	body, err := env.AppendJSON(make([]byte, 0, 320))
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	setCommonHeaders(w.Header(), "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// writeAuthProblem answers an authentication failure with problem details.
func writeAuthProblem(w http.ResponseWriter, r *http.Request, instance string, e *authn.Refusal) error {
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	if e.Code == authn.CodeStorageUnavailable {
		// the API-key store is down: the answer of the profile store
		// being down, whichever store failed
		return writeEnvelope(w, http.StatusServiceUnavailable, profile.Failed(profile.StorageUnavailableItem()))
	}
	return writeProblem(w, r, instance, profile.NewProblem(e.Status, e.Code, e.Detail, "", ""), e.Challenge)
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
