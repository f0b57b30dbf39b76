package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// BenchmarkGetHot is storage mode's hot path in process: a cached token
// and a warm bolt read, through the handler with a recorder. It is where
// the module's own share of a storage GET shows without net/http around
// it; profile it with
//
//	go test ./caddymodule -run '^$' -bench BenchmarkGetHot -benchmem -cpuprofile cpu.out
func BenchmarkGetHot(b *testing.B) {
	k := jwtauthtest.NewKey(b, jwa.RS256(), "bench")
	dbPath := filepath.Join(b.TempDir(), "bench.db")
	h, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), func(h *Handler) {
		h.CreateMissing = true
		h.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"bolt","path":%q}`, dbPath))
	})
	h.service.Store = h.service.Store.(*countingStore).Store
	tok := k.Mint(b, jwtauthtest.Claims("bench-user"), nil)
	req := httptest.NewRequest("GET", profilePath, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	get := func() {
		r := req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, r, next); err != nil || rec.Code != 200 {
			b.Fatal(err, rec.Code)
		}
	}
	get() // creates the profile and fills the cache
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		get()
	}
	reportCPU(b, cpu0)
}

// processCPU is the CPU time the process has used (user and system, the
// garbage collector's included). Per operation it tells a change's cost
// on a loaded machine better than wall time does: it does not grow while
// the benchmark waits for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64((processCPU()-since).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
