package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// faultStorage is a storage guest module of the test binary only, so that a
// real Caddy can be run on a store that fails the way stores fail: "hang"
// blocks every call until the request's context ends, "down" fails every
// call as a store that cannot be reached does.
type faultStorage struct {
	Mode  string `json:"mode,omitempty"`
	store profile.Store
}

var faultCalls atomic.Int64

func init() { caddy.RegisterModule(faultStorage{}) }

func (faultStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.workspace_profile.storage.test_fault", New: func() caddy.Module { return new(faultStorage) }}
}

func (f *faultStorage) Provision(caddy.Context) error {
	f.store = faultStore{Store: memstore.New(), mode: f.Mode}
	return nil
}

func (f *faultStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		f.Mode = d.Val()
	}
	return nil
}

func (f *faultStorage) ProfileStore() profile.Store { return f.store }
func (f *faultStorage) StoreName() string           { return "test_fault:" + f.Mode }

type faultStore struct {
	profile.Store
	mode string
}

var errDown = errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")

func (s faultStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	faultCalls.Add(1)
	switch s.mode {
	case "hang":
		<-ctx.Done()
		return profile.Profile{}, fmt.Errorf("store call: %w", ctx.Err())
	case "down":
		return profile.Profile{}, errDown
	}
	return s.Store.Get(ctx, id)
}

// TestClientCancelIsNotAStoreFailure: a client that hangs up while the
// store works is counted as client_closed, logged at debug and never as a
// store failure (through a real Caddy, the client a raw socket).
func TestClientCancelIsNotAStoreFailure(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: "storage test_fault hang", logPath: logPath})
	closedBefore := testutil.ToFloat64(metricRequests.WithLabelValues(outcomeClientClosed))
	storeErrBefore := testutil.ToFloat64(metricRequests.WithLabelValues(outcomeStorageError))
	tok := k.Mint(t, jwtauthtest.Claims("u-1"), nil)
	const clients = 20
	for range clients {
		before := faultCalls.Load()
		conn, err := net.Dial("tcp", itAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", profilePath, itHost, tok)
		waitFor(t, func() bool { return faultCalls.Load() > before }) // the request is in the store
		_ = conn.Close()
	}
	waitFor(t, func() bool {
		return testutil.ToFloat64(metricRequests.WithLabelValues(outcomeClientClosed))-closedBefore == clients
	})
	if d := testutil.ToFloat64(metricRequests.WithLabelValues(outcomeStorageError)) - storeErrBefore; d != 0 {
		t.Errorf("%v hang-ups counted as storage_error", d)
	}
	var data []byte
	waitFor(t, func() bool {
		data, _ = os.ReadFile(logPath)
		return strings.Count(string(data), `"status":499`) == clients
	})
	if strings.Contains(string(data), `"status":503`) {
		t.Errorf("a hang-up was answered 503 in the access log:\n%s", data)
	}
}

// TestStoreErrorsLoggedOncePerInterval: during an outage every request
// fails; the log gets one line per interval with the count of the others.
func TestStoreErrorsLoggedOncePerInterval(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), nil)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	clock := time.Unix(1_800_000_000, 0)
	h.storeErrors.now = func() time.Time { return clock }
	h.service.Store = faultStore{Store: h.service.Store, mode: "down"}
	tok := bearer(k.Mint(t, jwtauthtest.Claims("u-1"), nil))
	for range 100 {
		if rec := serve(t, h, "GET", profilePath, tok, ""); rec.Code != 503 || strings.Contains(rec.Body.String(), "refused") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	if n := logs.FilterMessage("profile store failed").Len(); n != 1 {
		t.Fatalf("%d log lines for 100 failures within one interval, want 1", n)
	}
	clock = clock.Add(storeErrorInterval)
	serve(t, h, "GET", profilePath, tok, "")
	lines := logs.FilterMessage("profile store failed").All()
	if len(lines) != 2 || lines[1].ContextMap()["failures_not_logged"] != int64(99) {
		t.Fatalf("after the interval: %d lines, last %v", len(lines), lines[len(lines)-1].ContextMap())
	}
}

// TestSubjectOneRuleOnEveryBackend: a subject that one backend would
// refuse (too long for PostgreSQL's index, say) is refused at
// authentication, the same on every backend, before any store call.
func TestSubjectOneRuleOnEveryBackend(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.CreateMissing = true })
	for name, sub := range map[string]string{
		"256 bytes":       strings.Repeat("a", profile.MaxUserIDBytes+1),
		"3000 characters": strings.Repeat("é", 1500),
	} {
		rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, jwtauthtest.Claims(sub), nil)), "")
		if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"InvalidToken"`) {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	if store.calls.Load() != 0 {
		t.Errorf("%d store calls", store.calls.Load())
	}
	if rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, jwtauthtest.Claims(strings.Repeat("a", profile.MaxUserIDBytes)), nil)), ""); rec.Code != 200 {
		t.Errorf("a subject of exactly %d bytes: %d %s", profile.MaxUserIDBytes, rec.Code, rec.Body)
	}
}

// TestStoreRegistryServesTheNewest: during a reload's overlap the admin
// endpoint serves the newest store under a name (a PostgreSQL reload that
// changes timeouts keeps the name and brings a new pool), and a reload
// rolled back serves the old one again.
func TestStoreRegistryServesTheNewest(t *testing.T) {
	r := &storeRegistry{stores: map[string][]profile.Store{}}
	older, newer := memstore.New(), memstore.New()
	r.add("pg", older)
	r.add("pg", newer)
	if s, _ := r.pick("pg"); s != newer {
		t.Fatal("the overlap serves the older store")
	}
	r.remove("pg", newer) // the new config failed and was cleaned up
	if s, _ := r.pick("pg"); s != older {
		t.Fatal("a rolled-back reload does not serve the old store again")
	}
	r.add("pg", newer)
	r.remove("pg", older) // the old config's cleanup after a good reload
	if s, _ := r.pick(""); s != newer {
		t.Fatal("after the reload the new store is not served")
	}
	r.remove("pg", newer)
	if _, err := r.pick(""); err == nil {
		t.Fatal("a store is served after every config released it")
	}
}
