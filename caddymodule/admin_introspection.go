package caddymodule

import (
	"sort"

	"github.com/workspace-edge/caddy-workspace-profile/internal/introspect"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// introspectionView is one entry of the admin view's introspection list:
// an introspector in use, or a route whose endpoint is still to be taken
// from its discovery document. Never a secret, a key or a token.
type introspectionView struct {
	introspect.Status
	// State is in_use (the endpoint is called; the status is its own) or
	// pending (the endpoint comes from discovery and is taken on the
	// first opaque token: endpoint is "", nothing was called yet).
	State string `json:"state"`
	// EndpointSource is config, discovery, or "config and discovery"
	// when routes of both kinds share the introspector.
	EndpointSource string `json:"endpoint_source"`
	// Discovery is the discovery document's URL (redacted) when the
	// endpoint comes from one.
	Discovery string `json:"discovery,omitempty"`
	// DiscoveredEndpoint (pending) is the introspection_endpoint the
	// document named when last read, "" when not read yet or it names
	// none; PendingReason says which, in words.
	DiscoveredEndpoint string `json:"discovered_endpoint,omitempty"`
	PendingReason      string `json:"pending_reason,omitempty"`
}

// The values of State.
const (
	introspectionInUse   = "in_use"
	introspectionPending = "pending"
)

// adminView is what l adds to the admin view: the introspectorPool key it
// holds ("" when pending) and its entry (Status left for the pool's
// introspector when it holds one). live is false once closed.
func (l *lazyIntrospector) adminView() (key string, v introspectionView, live bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", v, false
	}
	v.EndpointSource = "config"
	if l.src != nil {
		v.EndpointSource = "discovery"
		v.Discovery = l.src.Status().URL
	}
	if l.key != "" {
		return l.key, v, true
	}
	if l.src == nil {
		return "", v, false // a configured endpoint not taken: provision failed
	}
	v.Status = introspect.PendingStatus(l.cfg)
	v.State = introspectionPending
	endpoint := l.src.IntrospectionEndpoint()
	v.DiscoveredEndpoint = jwtauth.RedactURL(endpoint)
	_, read := l.src.SinceLastGood()
	switch {
	case endpoint != "" && endpoint == l.refused:
		v.PendingReason = "the introspection_endpoint the discovery document names was refused (see the log)"
	case endpoint != "":
		v.PendingReason = "taken on the first opaque token"
	case read:
		v.PendingReason = "the discovery document names no introspection_endpoint"
	default:
		v.PendingReason = "the discovery document was not read yet"
	}
	return "", v, true
}

// introspectionViews lists every introspector in use and every route
// still waiting for its discovered endpoint (one entry per discovery
// document, client and form), sorted by endpoint, discovery URL and
// client.
func introspectionViews() []introspectionView {
	sources := map[string]map[string]bool{} // pool key → endpoint sources
	discovery := map[string]string{}        // pool key → a discovery URL
	pending := map[string]introspectionView{}
	liveIntrospections.Range(func(k, _ any) bool {
		key, v, live := k.(*lazyIntrospector).adminView()
		switch {
		case !live:
		case key == "":
			pending[v.Discovery+" "+v.ClientID+" "+v.AuthMethod+" "+v.Response] = v
		default:
			if sources[key] == nil {
				sources[key] = map[string]bool{}
			}
			sources[key][v.EndpointSource] = true
			if v.Discovery != "" {
				discovery[key] = v.Discovery
			}
		}
		return true
	})
	out := []introspectionView{}
	introspectorPool.Range(func(k, v any) bool {
		p, ok := v.(pooledIntrospector)
		key, _ := k.(string)
		if !ok {
			return true
		}
		src := "config"
		switch {
		case sources[key]["config"] && sources[key]["discovery"]:
			src = "config and discovery"
		case sources[key]["discovery"]:
			src = "discovery"
		}
		out = append(out, introspectionView{Status: p.Status(), State: introspectionInUse, EndpointSource: src,
			Discovery: discovery[key]})
		return true
	})
	for _, v := range pending {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Endpoint+" "+a.Discovery+" "+a.ClientID < b.Endpoint+" "+b.Discovery+" "+b.ClientID
	})
	return out
}
