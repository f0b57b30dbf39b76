package caddymodule

import (
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	route := matchRoute(r.URL.EscapedPath(), h.path)
	// On the route, in any spelling and with any method (OPTIONS passes on
	// below), the module is the only source of identity headers whatever
	// keep_client_identity_headers says: the option only keeps them on the
	// site's other paths.
	if route != routeOther || !h.KeepClientIdentityHeaders {
		scrubIdentityHeaders(r.Header)
	}
	// Request trailers are never forwarded, on any path: a backend that
	// merges them into headers would take X-Workspace-* or Authorization
	// from them. net/http fills the map it shares with this request when
	// the body ends; a nil map here is what every handler after this sees.
	r.Trailer = nil
	scrubPathOverrides(r.Header, h.path)
	switch route {
	case routeOther:
		return next.ServeHTTP(w, r)
	case routeRefused:
		return writeProblem(w, r, h.path, profile.NewProblem(http.StatusBadRequest, codeInvalidPath, profile.DetailInvalidPath, "", ""), "")
	}
	if h.keys != nil {
		// the answer depends on the key header as on Authorization
		// (varyAuthorization adds that one where the answer is written)
		w.Header()["Vary"] = append(w.Header()["Vary"], h.APIKeys.header())
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
	caller, aerr := h.authenticate(r)
	if aerr != nil {
		return writeAuthProblem(w, r, h.path, aerr)
	}
	if h.upstream != nil {
		return h.serveUpstream(w, r, caller)
	}

	if r.Method == http.MethodGet {
		return h.serveGet(w, r, caller)
	}
	return h.servePut(w, r, caller)
}

func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, caller authn.Principal) error {
	p, err := h.service.Get(r.Context(), identity(caller))
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

func (h *Handler) servePut(w http.ResponseWriter, r *http.Request, caller authn.Principal) error {
	req, warnings, ok := h.readUpdate(w, r)
	if !ok {
		return nil
	}
	res, err := h.service.Put(r.Context(), identity(caller), r.Header.Get("If-Match"), req)
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
	// A coded body (gzip, br, deflate...) is refused before a byte of it is
	// read: the edge decodes none, so it could neither check it nor cap
	// its decoded size (RFC 9110 section 15.5.16: 415 with Accept-Encoding).
	if !isIdentityEncoding(r.Header.Values("Content-Encoding")) {
		w.Header().Set("Accept-Encoding", "identity")
		return refuse(http.StatusUnsupportedMediaType, profile.Failed(profile.NewError(profile.CodeUnsupportedMediaType,
			"The request body must be sent without a content coding (Content-Encoding: identity).", "", profile.TypeValidation, nil)))
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

// isIdentityEncoding reports whether the Content-Encoding values of a
// request name no coding: absent, empty, or only "identity" (any case).
func isIdentityEncoding(values []string) bool {
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
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
