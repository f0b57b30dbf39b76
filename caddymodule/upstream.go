package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// serveUpstream forwards an authenticated request to the legacy backend
// through reverse_proxy and answers with the normalized response. A PUT is
// validated here first, so the backend only ever sees valid, canonical
// bodies; nothing refused at the edge reaches it.
func (h *Handler) serveUpstream(w http.ResponseWriter, r *http.Request, caller authn.Principal) error {
	var body []byte
	var warnings []profile.Item
	if r.Method == http.MethodPut {
		req, warns, ok := h.readUpdate(w, r)
		if !ok {
			return nil
		}
		warnings = warns
		body = req.CanonicalJSON()
	}
	out := h.upstreamRequest(r, caller, body)

	buf := newBufferedResponse(h.MaxUpstreamBody)
	defer buf.release()
	err := h.proxy(buf, out)
	switch {
	case r.Context().Err() != nil:
		// the client hung up: nobody reads the answer, and it is no error
		if ce := h.logger.Check(zapcore.DebugLevel, "client closed the request during the upstream trip"); ce != nil {
			ce.Write()
		}
		writeClientClosed(w)
		return nil
	case buf.overflow:
		return writeEnvelope(w, http.StatusBadGateway, profile.Failed(profile.UpstreamTooLargeItem(h.MaxUpstreamBody)))
	case err != nil:
		return h.writeTripError(w, err)
	}

	legacy := profile.LegacyResponse{Status: buf.status, ContentType: buf.header.Get("Content-Type"), Body: buf.body.Bytes()}
	if ce := buf.header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		// the request asked for identity; an encoded body cannot be read
		legacy.ContentType, legacy.Body = "application/octet-stream", nil
	}
	n := profile.Normalize(legacy)
	copyEndToEndHeaders(w.Header(), buf.header)
	// the backend's codes are its own: the answer counts by its status
	countOutcome(relayedOutcome(n.Status))
	switch {
	case n.Problem != nil:
		challenge := ""
		if n.Status == http.StatusUnauthorized {
			challenge = h.authn.Challenges().BackendChallenge(r.Header.Get("Authorization"), profile.DetailBackendRefusedToken)
		}
		return putProblem(w, r, h.path, *n.Problem, challenge)
	case n.Envelope == nil: // 304
		putNotModified(w, n.Status)
		return nil
	}
	// the edge's own warnings (UnknownField) hold whatever the backend said,
	// as they do in storage mode
	n.Envelope.Warnings = append(n.Envelope.Warnings, warnings...)
	return putEnvelope(w, n.Status, *n.Envelope)
}

// upstreamRequest is the request the backend sees: the route's own path
// (never the client's spelling of it), the token in Authorization and never
// in the query (an API key nowhere: neither Authorization nor the key
// header, nor any query or cookie value shaped like one), the caller's identity in X-Workspace-* headers that a client
// cannot forge, Accept-Encoding identity (so that the body can be read),
// and the validated body of a PUT without the client's trailers or
// Content-Encoding.
func (h *Handler) upstreamRequest(r *http.Request, caller authn.Principal, body []byte) *http.Request {
	c := caller.Claims
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = h.path, ""
	out.URL.RawQuery = withoutKeyValues(jwtauth.WithoutTokenParams(r.URL.RawQuery), out.Header, h.keyPrefix())
	out.RequestURI = ""
	out.Trailer = nil
	dropConnectionHeaders(out.Header)
	for name := range out.Header {
		if isIdentityHeader(name) {
			delete(out.Header, name)
		}
	}
	out.Header.Set("Accept-Encoding", "identity")
	// the body the backend gets is the edge's own, never coded: the
	// client's label for its body must not ride along beside it
	delete(out.Header, "Content-Encoding")
	// a DPoP proof is for this edge (RFC 9449): the backend gets the
	// verified token as a plain bearer token and never the proof
	delete(out.Header, "Dpop")
	// an API key is this edge's secret: the backend learns its owner
	// from the identity headers, never the key
	delete(out.Header, h.authn.KeyHeader())
	if caller.Method == authn.MethodAPIKey {
		delete(out.Header, "Authorization")
	} else {
		out.Header.Set("Authorization", "Bearer "+caller.Credential.Token)
	}
	if sub, ok := c.Str(h.authn.SubjectClaim()); ok {
		out.Header.Set("X-Workspace-User-Id", sub)
	}
	if t, ok := authn.UserType(c); ok {
		out.Header.Set("X-Workspace-User-Type", t)
	}
	if r.Method == http.MethodPut {
		out.Body = httpBody(body)
		out.ContentLength = int64(len(body))
		out.Header.Set("Content-Type", "application/json; charset=utf-8")
	} else {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	return out
}

// dropConnectionHeaders does the client's hop-by-hop processing before the
// edge sets its own headers: the headers the client names in Connection
// are deleted now, with Connection itself and the other hop-by-hop and
// framing headers of the client's request (Upgrade, TE, Trailer,
// Transfer-Encoding, Content-Length), so that reverse_proxy's own
// hop-by-hop pass, which runs after this handler, finds nothing to delete
// among the edge's Authorization and identity headers.
func dropConnectionHeaders(hdr http.Header) {
	for _, v := range hdr["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				hdr.Del(name)
			}
		}
	}
	for _, name := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Upgrade", "Te", "Trailer",
		"Transfer-Encoding", "Content-Length"} {
		delete(hdr, name)
	}
}

// errAborted is reverse_proxy's abort (http.ErrAbortHandler) turned into an
// error: the response broke off after its headers.
var errAborted = errors.New("upstream response aborted")

// proxy runs reverse_proxy into the buffer. reverse_proxy aborts a response
// that breaks off after its headers by panicking with http.ErrAbortHandler;
// since nothing has been written to the client yet, that is an error here.
func (h *Handler) proxy(buf *bufferedResponse, r *http.Request) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec != http.ErrAbortHandler {
				panic(rec)
			}
			err = errAborted
		}
	}()
	return h.upstream.ServeHTTP(buf, r, noNext)
}

var noNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// writeTripError answers a failed trip: 504 for a timeout, 502 otherwise.
func (h *Handler) writeTripError(w http.ResponseWriter, err error) error {
	var he caddyhttp.HandlerError
	status, item := http.StatusBadGateway, profile.UpstreamUnavailableItem()
	switch {
	case errors.As(err, &he) && he.StatusCode == http.StatusGatewayTimeout, errors.Is(err, context.DeadlineExceeded):
		status, item = http.StatusGatewayTimeout, profile.UpstreamTimeoutItem()
	case errors.Is(err, errAborted):
		item = profile.UpstreamBrokenOffItem()
	}
	if ce := h.logger.Check(zapcore.WarnLevel, "upstream trip failed"); ce != nil {
		ce.Write(zap.Error(err), zap.Int("status", status))
	}
	return writeEnvelope(w, status, profile.Failed(item))
}

// Response headers that are the edge's to set, or hop-by-hop.
var notPassed = map[string]bool{
	"Content-Length": true, "Content-Type": true, "Content-Encoding": true, "Transfer-Encoding": true,
	"Cache-Control": true, "X-Content-Type-Options": true, "Www-Authenticate": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Upgrade": true,
}

// copyEndToEndHeaders passes the backend's end-to-end headers (Set-Cookie,
// ETag, Location...) to the client. Response trailers never become client
// headers: reverse_proxy writes the announced ones into the header map under
// their own names after the body (and the others under
// http.TrailerPrefix), so every name the backend announced in Trailer is
// left out, as is anything with the prefix.
func copyEndToEndHeaders(dst, src http.Header) {
	var trailers []string
	for _, v := range src["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				trailers = append(trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
	for name, values := range src {
		if notPassed[name] || slices.Contains(trailers, name) || strings.HasPrefix(name, http.TrailerPrefix) {
			continue
		}
		// the buffered answer's map is dropped after this request, so its
		// value slices are handed over rather than copied
		dst[name] = values
	}
}

// bufferedResponse holds the backend's answer until it is normalized: the
// client never sees a half-normalized stream. Past limit, Write fails, which
// makes reverse_proxy stop reading the backend.
type bufferedResponse struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int64
	overflow bool
}

var errTooLarge = errors.New("upstream response over the size limit")

// bufferedResponses are reused: each holds a body buffer that would
// otherwise be grown anew for every answer. A buffer that grew past
// maxPooledBody (a large answer) is left to the collector rather than kept.
var bufferedResponses = sync.Pool{New: func() any { return new(bufferedResponse) }}

const maxPooledBody = 64 << 10

func newBufferedResponse(limit int64) *bufferedResponse {
	b := bufferedResponses.Get().(*bufferedResponse)
	b.header, b.limit = http.Header{}, limit
	return b
}

// release returns b to the pool once nothing reads its body any more: the
// normalized answer holds copies (strings), never the body's bytes.
func (b *bufferedResponse) release() {
	if b.body.Cap() > maxPooledBody {
		return
	}
	b.body.Reset()
	b.header, b.status, b.overflow = nil, 0, false
	bufferedResponses.Put(b)
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if status >= 200 && b.status == 0 { // 1xx informational answers are not the answer
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if int64(b.body.Len()+len(p)) > b.limit {
		b.overflow = true
		return 0, errTooLarge
	}
	return b.body.Write(p)
}

// Flush is a no-op: nothing goes to the client before the end.
func (b *bufferedResponse) Flush() {}

func httpBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// Timeouts of the backend trip when the upstream block sets none: a
// backend that never answers, or stops sending halfway, must not hold a
// request (and the client's connection) forever.
const (
	DefaultUpstreamResponseHeaderTimeout = 30 * time.Second
	DefaultUpstreamReadTimeout           = 30 * time.Second
)

// withDefaultTimeouts gives the upstream reverse_proxy's HTTP transport a
// response_header_timeout and a read_timeout unless the config sets its
// own. A transport of another protocol is left as configured.
func withDefaultTimeouts(raw json.RawMessage) (json.RawMessage, error) {
	var rp map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rp); err != nil {
		return nil, err
	}
	transport := map[string]json.RawMessage{"protocol": json.RawMessage(`"http"`)}
	if t, ok := rp["transport"]; ok {
		if err := json.Unmarshal(t, &transport); err != nil {
			return nil, err
		}
	}
	var protocol string
	if json.Unmarshal(transport["protocol"], &protocol) != nil || protocol != "http" {
		return raw, nil
	}
	for name, d := range map[string]time.Duration{"response_header_timeout": DefaultUpstreamResponseHeaderTimeout,
		"read_timeout": DefaultUpstreamReadTimeout} {
		if _, set := transport[name]; !set {
			transport[name] = json.RawMessage(strconv.FormatInt(int64(d), 10))
		}
	}
	t, err := json.Marshal(transport)
	if err != nil {
		return nil, err
	}
	rp["transport"] = t
	return json.Marshal(rp)
}
