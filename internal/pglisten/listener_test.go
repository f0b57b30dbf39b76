package pglisten_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pglisten"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

type pgMain struct{ m *testing.M }

func (p pgMain) Run() int { return pgtest.Run(p.m) }

// TestMain fails the package's tests when any goroutine outlives them,
// and stops the throwaway PostgreSQL server they may have started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgMain{m}) }

type recorder struct {
	mu       sync.Mutex
	payloads []string
	resets   int
}

func (r *recorder) notify(p string) { r.mu.Lock(); r.payloads = append(r.payloads, p); r.mu.Unlock() }
func (r *recorder) reset()          { r.mu.Lock(); r.resets++; r.mu.Unlock() }

func (r *recorder) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newListener(t *testing.T) (*pglisten.Listener, *pgx.Conn) {
	t.Helper()
	d := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	l := pglisten.New(pglisten.Config{ConnConfig: cfg, ApplicationName: "pglisten_test"})
	t.Cleanup(l.Close)
	conn, err := pgx.Connect(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return l, conn
}

func send(t *testing.T, conn *pgx.Conn, channel, payload string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		t.Fatal(err)
	}
}

// TestSubscribersHearTheirChannelsOnly: channel names are quoted (dots,
// quotes, upper case), each subscriber hears its channel only, and after
// unsubscribing hears nothing more.
func TestSubscribersHearTheirChannelsOnly(t *testing.T) {
	l, conn := newListener(t)
	suffix := fmt.Sprint(os.Getpid(), time.Now().UnixNano())
	chA, chB := `Schema"A.keys `+suffix, "schema_b.keys "+suffix
	var a, b recorder
	if h := l.Health(); h.Started {
		t.Fatalf("started before any subscription: %+v", h)
	}
	stopA := l.Subscribe(chA, a.notify, a.reset)
	stopB := l.Subscribe(chB, b.notify, b.reset)
	defer stopB()
	a.wait(t, "a listening", func() bool { return a.resets == 1 })
	b.wait(t, "b listening", func() bool { return b.resets == 1 })
	send(t, conn, chA, "one")
	send(t, conn, chB, "two")
	a.wait(t, "a hears one", func() bool { return len(a.payloads) == 1 && a.payloads[0] == "one" })
	b.wait(t, "b hears two", func() bool { return len(b.payloads) == 1 && b.payloads[0] == "two" })
	stopA()
	time.Sleep(100 * time.Millisecond) // the UNLISTEN
	send(t, conn, chA, "three")
	send(t, conn, chB, "four")
	b.wait(t, "b hears four", func() bool { return len(b.payloads) == 2 })
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.payloads) != 1 {
		t.Fatalf("a heard %v after unsubscribing", a.payloads)
	}
	if h := l.Health(); !h.Connected || h.Notifications != 3 || h.Connects != 1 {
		t.Fatalf("health %+v: want connected, 3 notifications (one, two, four)", h)
	}
}

// TestReconnectsAfterTheServerEndsTheSession: the session is terminated;
// the listener reconnects, says so with onReset, and hears again.
func TestReconnectsAfterTheServerEndsTheSession(t *testing.T) {
	l, conn := newListener(t)
	ch := "reconnect " + fmt.Sprint(os.Getpid(), time.Now().UnixNano())
	var r recorder
	defer l.Subscribe(ch, r.notify, r.reset)()
	r.wait(t, "listening", func() bool { return r.resets == 1 })
	pid := l.Health().PID
	var app string
	if err := conn.QueryRow(context.Background(), "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid).Scan(&app); err != nil || app != "pglisten_test" {
		t.Fatalf("application_name %q, %v", app, err)
	}
	if _, err := conn.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "reset after reconnecting", func() bool { return r.resets == 2 })
	send(t, conn, ch, "again")
	r.wait(t, "heard after reconnecting", func() bool { return len(r.payloads) == 1 })
	if h := l.Health(); !h.Connected || h.Connects != 2 || h.PID == pid || h.LastError == "" || h.LastErrorAt.IsZero() {
		t.Fatalf("health %+v", h)
	}
}

// TestRetriesUntilTheServerAnswers: a server that refuses connections
// leaves the listener disconnected with the error, retrying, and Close
// still ends it at once.
func TestRetriesUntilTheServerAnswers(t *testing.T) {
	cfg, err := pgx.ParseConfig("postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	l := pglisten.New(pglisten.Config{ConnConfig: cfg, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	var r recorder
	l.Subscribe("never", r.notify, r.reset)
	time.Sleep(200 * time.Millisecond)
	h := l.Health()
	start := time.Now()
	l.Close()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %v", took)
	}
	if h.Connected || h.LastError == "" || !h.Started || r.resets != 0 {
		t.Fatalf("health %+v, resets %d", h, r.resets)
	}
	l.Subscribe("after close", r.notify, r.reset)() // a no-op, no goroutine
}

// TestPingsKeepTheConnection: waits interrupted every 20 ms to ping the
// server leave the connection usable: the same session hears afterwards.
func TestPingsKeepTheConnection(t *testing.T) {
	d := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	l := pglisten.New(pglisten.Config{ConnConfig: cfg, PingInterval: 20 * time.Millisecond})
	defer l.Close()
	conn, err := pgx.Connect(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ch := "ping " + fmt.Sprint(os.Getpid(), time.Now().UnixNano())
	var r recorder
	defer l.Subscribe(ch, r.notify, r.reset)()
	r.wait(t, "listening", func() bool { return r.resets == 1 })
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		send(t, conn, ch, "p")
		time.Sleep(15 * time.Millisecond)
	}
	r.wait(t, "five notifications", func() bool { return len(r.payloads) == 5 })
	if h := l.Health(); h.Connects != 1 || h.LastError != "" {
		t.Fatalf("health %+v: want one connection, no error", h)
	}
}
