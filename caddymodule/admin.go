package caddymodule

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI adds the module's view to Caddy's admin endpoint:
//
//	GET /workspace-profile/keys   every key source in use: its URL or file,
//	                              the kids with their algorithms, the last
//	                              good fetch, the last error, the next refresh;
//	                              and every introspection endpoint in use: its
//	                              client, the last good call, the last error,
//	                              whether it fails fast (never a secret), and
//	                              each route still waiting for the endpoint
//	                              its discovery document names (pending).
//
//	GET  /workspace-profile/profiles  export, JSON lines (see admin_profiles.go)
//	POST /workspace-profile/profiles  import, all or nothing, with a report
//
// Nothing secret is shown: key IDs and types, never key material or tokens;
// a key-set URL is shown redacted (jwtauth.RedactURL: no userinfo, no query values).
// Caddy loads admin.api modules by itself; no config is needed.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.workspace_profile",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/workspace-profile/keys", Handler: caddy.AdminHandlerFunc(serveKeys)},
		{Pattern: "/workspace-profile/profiles", Handler: caddy.AdminHandlerFunc(serveProfiles)},
		{Pattern: apiKeysPath, Handler: caddy.AdminHandlerFunc(serveAPIKeys)},
		{Pattern: apiKeysPath + "/", Handler: caddy.AdminHandlerFunc(serveAPIKey)},
	}
}

func serveKeys(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Message: "GET only"}
	}
	out := struct {
		Version       string                 `json:"version"`
		Sources       []jwtauth.SourceStatus `json:"sources"`
		Introspection []introspectionView    `json:"introspection"`
	}{Version: Version, Sources: []jwtauth.SourceStatus{}, Introspection: introspectionViews()}
	rangeURLSources(func(s *jwtauth.URLSource) { out.Sources = append(out.Sources, s.Status()) })
	// a file named by several handlers (or by both configs of a reload's
	// overlap) is one source to an operator: list each path once, as last
	// loaded
	files := map[string]jwtauth.SourceStatus{}
	liveFiles.Range(func(k, _ any) bool {
		st := k.(*jwtauth.FileSource).Status()
		if prev, ok := files[st.File]; !ok || prev.LastGood == nil || st.LastGood != nil && st.LastGood.After(*prev.LastGood) {
			files[st.File] = st
		}
		return true
	})
	for _, st := range files {
		out.Sources = append(out.Sources, st)
	}
	sort.Slice(out.Sources, func(i, j int) bool {
		return out.Sources[i].URL+out.Sources[i].File < out.Sources[j].URL+out.Sources[j].File
	})
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
