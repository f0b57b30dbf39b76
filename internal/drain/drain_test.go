package drain

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// The tests of Close and Timeout run in synctest bubbles: drainQuiet and drainGrace pass on the
// bubble's fake clock, at once and always alike, and synctest.Wait says
// when every goroutine, Close's included, is blocked.

// gate is a memstore.Store whose calls can be stopped on their way in,
// before they reach the map, until the test lets them through. A call that
// goes on after the memstore was closed fails with ErrUnavailable (Export
// aside, which memstore serves closed or not).
type gate struct {
	*memstore.Store
	entered chan string   // told the name of each call that arrives; nil: no stop
	release chan struct{} // a send lets one stopped call through; closing it, all

	once   sync.Once
	mu     sync.Mutex
	ctxs   []context.Context // the context of each call, in arrival order
	closed bool
}

func newGate(stop bool) *gate {
	g := &gate{Store: memstore.New()}
	if stop {
		g.entered, g.release = make(chan string, 64), make(chan struct{})
	}
	return g
}

// open lets every stopped call through, now and later. The tests defer it,
// so that one that fails leaves no call stopped in its bubble.
func (g *gate) open() {
	if g.release != nil {
		g.once.Do(func() { close(g.release) })
	}
}

func (g *gate) arrive(ctx context.Context, call string) {
	g.mu.Lock()
	g.ctxs = append(g.ctxs, ctx)
	g.mu.Unlock()
	if g.entered != nil {
		g.entered <- call
		<-g.release
	}
}

func (g *gate) Get(ctx context.Context, id string) (profile.Profile, error) {
	g.arrive(ctx, "Get")
	return g.Store.Get(ctx, id)
}

func (g *gate) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	g.arrive(ctx, "Update")
	return g.Store.Update(ctx, id, fn)
}

func (g *gate) Export(ctx context.Context, fn func(profile.Profile) error) error {
	g.arrive(ctx, "Export")
	return g.Store.Export(ctx, fn)
}

func (g *gate) Import(ctx context.Context, profiles []profile.Profile) error {
	g.arrive(ctx, "Import")
	return g.Store.Import(ctx, profiles)
}

func (g *gate) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return g.Store.Close()
}

func (g *gate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *gate) lastCtx() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ctxs[len(g.ctxs)-1]
}

// rename is an UpdateFunc that writes a new first name.
func rename(first string) profile.UpdateFunc {
	return func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
		cur.FirstName = first
		return cur, true, nil
	}
}

// seed writes the profile u-1 straight into the memstore under g.
func seed(t *testing.T, g *gate) {
	t.Helper()
	if _, err := g.Store.Update(t.Context(), "u-1", rename("Ada")); err != nil {
		t.Fatal(err)
	}
}

// calls are the store calls the drain Store counts, each run on d and
// failing unless it reached an open store.
var calls = []struct {
	name string
	run  func(ctx context.Context, d *Store) error
}{
	{"Get", func(ctx context.Context, d *Store) error {
		_, err := d.Get(ctx, "u-1")
		return err
	}},
	{"Update", func(ctx context.Context, d *Store) error {
		_, err := d.Update(ctx, "u-1", rename("Grace"))
		return err
	}},
	{"Export", func(ctx context.Context, d *Store) error {
		n := 0
		if err := d.Export(ctx, func(profile.Profile) error { n++; return nil }); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("the export listed no profile")
		}
		return nil
	}},
	{"Import", func(ctx context.Context, d *Store) error {
		return d.Import(ctx, []profile.Profile{{UserID: "u-2", UserName: "bob"}})
	}},
	{"Timeout.Update", func(ctx context.Context, d *Store) error {
		_, err := Timeout{Store: d, D: time.Minute}.Update(ctx, "u-1", rename("Grace"))
		return err
	}},
}

// returned reports whether ch holds a value, after synctest.Wait.
func returned(ch <-chan error) bool {
	synctest.Wait()
	return len(ch) > 0
}

// TestCloseWaitsForCallInProgress: Close does not close the store under a
// call running on it, however long the call takes within drainGrace; the
// call completes against the open store, and Close then closes it.
func TestCloseWaitsForCallInProgress(t *testing.T) {
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate(true)
				defer g.open()
				seed(t, g)
				d := New(g)

				result := make(chan error, 1)
				go func() { result <- c.run(t.Context(), d) }()
				<-g.entered // the call is inside the store

				closed := make(chan error, 1)
				go func() { closed <- d.Close() }()
				time.Sleep(drainGrace / 2)
				if returned(closed) || g.isClosed() {
					t.Fatal("Close closed the store under a call in progress")
				}

				g.open()
				if err := <-result; err != nil {
					t.Fatalf("the call in progress failed: %v", err)
				}
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
				if !g.isClosed() {
					t.Fatal("Close returned without closing the store")
				}
			})
		})
	}
}

// TestCloseWaitsForManyCalls: with calls of every kind in progress at
// once, Close waits for all of them; none fails.
func TestCloseWaitsForManyCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(true)
		defer g.open()
		seed(t, g)
		d := New(g)
		const rounds = 8
		results := make(chan error, rounds*len(calls))
		for range rounds {
			for _, c := range calls {
				go func() { results <- c.run(t.Context(), d) }()
			}
		}
		for range rounds * len(calls) {
			<-g.entered
		}

		closed := make(chan error, 1)
		go func() { closed <- d.Close() }()
		time.Sleep(time.Second)
		if returned(closed) || g.isClosed() {
			t.Fatal("Close closed the store under calls in progress")
		}
		// let them through one at a time: the store stays open until the last
		for i := range rounds * len(calls) {
			g.release <- struct{}{}
			if err := <-results; err != nil {
				t.Fatalf("call %d failed: %v", i, err)
			}
			time.Sleep(2 * drainQuiet)
			if i < rounds*len(calls)-1 && (returned(closed) || g.isClosed()) {
				t.Fatalf("Close closed the store with %d calls still in progress", rounds*len(calls)-1-i)
			}
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if !g.isClosed() {
			t.Fatal("Close returned without closing the store")
		}
	})
}

// TestCloseWaitsForEnter: a request that holds Enter keeps the store open
// between its store calls, while no call is running on the store.
func TestCloseWaitsForEnter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(false)
		seed(t, g)
		d := New(g)

		leave := d.Enter()
		if _, err := d.Get(t.Context(), "u-1"); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- d.Close() }()
		time.Sleep(drainGrace / 2)
		if returned(closed) || g.isClosed() {
			t.Fatal("Close closed the store under a request between two store calls")
		}
		if _, err := d.Update(t.Context(), "u-1", rename("Grace")); err != nil {
			t.Fatalf("the request's second call failed: %v", err)
		}
		leave()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if !g.isClosed() {
			t.Fatal("Close returned without closing the store")
		}
	})
}

// TestCloseWaitsQuietPeriod: with nothing in progress Close still waits
// drainQuiet, no more, before it closes the store, for a request handed
// to the old config just before.
func TestCloseWaitsQuietPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(false)
		d := New(g)
		start := time.Now()
		closed := make(chan error, 1)
		go func() { closed <- d.Close() }()
		if returned(closed) || g.isClosed() {
			t.Fatal("Close closed the store at once, without the quiet period")
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != drainQuiet {
			t.Fatalf("Close waited %v with nothing in progress, want drainQuiet (%v)", waited, drainQuiet)
		}
		if !g.isClosed() {
			t.Fatal("Close returned without closing the store")
		}
	})
}

// TestCallDuringQuietPeriod: a call that arrives while Close waits out the
// quiet period keeps the store open until it ends, and the quiet period
// starts again after it.
func TestCallDuringQuietPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(true)
		defer g.open()
		seed(t, g)
		d := New(g)
		closed := make(chan error, 1)
		go func() { closed <- d.Close() }()
		synctest.Wait() // Close is in its quiet period

		result := make(chan error, 1)
		go func() {
			_, err := d.Update(t.Context(), "u-1", rename("Grace"))
			result <- err
		}()
		<-g.entered
		time.Sleep(2 * drainQuiet) // the first quiet period is over
		if returned(closed) || g.isClosed() {
			t.Fatal("Close closed the store under a call that arrived in its quiet period")
		}

		g.open()
		if err := <-result; err != nil {
			t.Fatalf("the call failed: %v", err)
		}
		released := time.Now()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(released); waited != drainQuiet {
			t.Fatalf("Close waited %v after the last call, want drainQuiet (%v)", waited, drainQuiet)
		}
	})
}

// TestCloseGivesUpAfterGrace: a call that does not end holds Close for
// drainGrace only; then the store is closed under it.
func TestCloseGivesUpAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(true)
		defer g.open()
		seed(t, g)
		d := New(g)
		result := make(chan error, 1)
		go func() {
			_, err := d.Update(t.Context(), "u-1", rename("Grace"))
			result <- err
		}()
		<-g.entered

		start := time.Now()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != drainGrace {
			t.Fatalf("Close waited %v for a call that does not end, want drainGrace (%v)", waited, drainGrace)
		}
		if !g.isClosed() {
			t.Fatal("Close returned without closing the store")
		}
		g.open()
		if err := <-result; !errors.Is(err, profile.ErrUnavailable) {
			t.Fatalf("the call outlived the grace and found the store open: %v", err)
		}
	})
}

// TestPassesCallsThrough: every call reaches the wrapped store, answers
// and errors as they are.
func TestPassesCallsThrough(t *testing.T) {
	synctest.Test(t, testPassesCallsThrough)
}

func testPassesCallsThrough(t *testing.T) {
	ctx := t.Context()
	g := newGate(false)
	d := New(g)

	if _, err := d.Get(ctx, "u-1"); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("Get of a missing profile: %v, want ErrNotFound", err)
	}
	p, err := d.Update(ctx, "u-1", rename("Ada"))
	if err != nil || p.FirstName != "Ada" || p.Version != 1 {
		t.Fatalf("Update: %+v, %v", p, err)
	}
	if p, err := g.Store.Get(ctx, "u-1"); err != nil || p.FirstName != "Ada" {
		t.Fatalf("the wrapped store holds %+v, %v after Update", p, err)
	}
	if p, err := d.Get(ctx, "u-1"); err != nil || p.FirstName != "Ada" {
		t.Fatalf("Get: %+v, %v", p, err)
	}
	taken := func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{}, false, profile.ErrUserNameTaken
	}
	if _, err := d.Update(ctx, "u-1", taken); !errors.Is(err, profile.ErrUserNameTaken) {
		t.Fatalf("Update's own error: %v, want ErrUserNameTaken", err)
	}
	if err := d.Import(ctx, []profile.Profile{{UserID: "u-2", UserName: "bob"}}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	var ids []string
	if err := d.Export(ctx, func(p profile.Profile) error { ids = append(ids, p.UserID); return nil }); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if len(ids) != 2 || ids[0] != "u-1" || ids[1] != "u-2" {
		t.Fatalf("Export listed %v, want [u-1 u-2]", ids)
	}
	var conflict *profile.ImportConflict
	if err := d.Import(ctx, []profile.Profile{{UserID: "u-3", UserName: "BOB"}}); !errors.As(err, &conflict) {
		t.Fatalf("Import's own error: %v, want an ImportConflict", err)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !g.isClosed() {
		t.Fatal("Close did not close the wrapped store")
	}
	if _, err := d.Get(ctx, "u-1"); !errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Get after Close: %v, want the wrapped store's ErrUnavailable", err)
	}
}

// TestNoTransfer: Export and Import of a store that cannot export or
// import fail, without calling fn or writing anything.
func TestNoTransfer(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	d := New(struct{ profile.Store }{mem}) // hides memstore's Export and Import

	called := false
	if err := d.Export(ctx, func(profile.Profile) error { called = true; return nil }); !errors.Is(err, errNoTransfer) {
		t.Fatalf("Export: %v, want errNoTransfer", err)
	}
	if called {
		t.Fatal("Export called fn")
	}
	if err := d.Import(ctx, []profile.Profile{{UserID: "u-1"}}); !errors.Is(err, errNoTransfer) {
		t.Fatalf("Import: %v, want errNoTransfer", err)
	}
	if _, err := mem.Get(ctx, "u-1"); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("Import wrote to a store that cannot import: %v", err)
	}
}

// TestTimeout: Timeout bounds an Update by D, or by the caller's deadline
// when that comes first, and leaves a Get's context as the caller gave it.
func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(false)
		seed(t, g)
		ts := Timeout{Store: New(g), D: 3 * time.Second}

		if _, err := ts.Update(t.Context(), "u-1", rename("Grace")); err != nil {
			t.Fatal(err)
		}
		if dl, ok := g.lastCtx().Deadline(); !ok || !dl.Equal(time.Now().Add(ts.D)) {
			t.Fatalf("Update's deadline: %v (set: %v), want now + D", dl, ok)
		}

		early, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := ts.Update(early, "u-1", rename("Ada")); err != nil {
			t.Fatal(err)
		}
		if dl, ok := g.lastCtx().Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("Update's deadline: %v (set: %v), want the caller's, which comes first", dl, ok)
		}

		type key struct{}
		caller := context.WithValue(t.Context(), key{}, "request")
		if _, err := ts.Get(caller, "u-1"); err != nil {
			t.Fatal(err)
		}
		if got := g.lastCtx(); got != caller {
			t.Fatal("Get did not pass the caller's context as it is")
		}
		if _, ok := g.lastCtx().Deadline(); ok {
			t.Fatal("Get has a deadline of its own")
		}
	})
}
