package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// firstName reads the FirstName of tok's profile on n: the status and the
// value ("" when absent).
func firstName(t testing.TB, n node, tok string) (int, string) {
	status, _, body := send(t, "GET", n.url, tok, "")
	var env struct{ Data struct{ FirstName *string } }
	if status != 200 || json.Unmarshal([]byte(body), &env) != nil || env.Data.FirstName == nil {
		return status, ""
	}
	return status, *env.Data.FirstName
}

// waitFirstName polls n until tok's profile has FirstName want, and
// returns how long that took from since; after bound it fails t.
func waitFirstName(t testing.TB, n node, tok, want string, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for {
		status, got := firstName(t, n, tok)
		if status == 200 && got == want {
			return time.Since(since)
		}
		if time.Since(since) > bound {
			t.Fatalf("%s still serves FirstName %q (status %d) %v after %q was written, bound %v",
				n.url, got, status, time.Since(since).Round(time.Millisecond), want, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeMetric is the value of the metric caddy_workspace_profile_<name> on
// n's admin endpoint, summed over its series (one per store); -1 when n
// reports none.
func nodeMetric(t testing.TB, n node, name string) float64 {
	t.Helper()
	resp, err := client.Get(n.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_workspace_profile_"+name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

// waitListening waits until every node's store has its listening
// connection up, and has made at least connects connections in all.
func waitListening(t testing.TB, nodes []node, connects float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i, n := range nodes {
		for nodeMetric(t, n, "pg_listener_connected") != 1 || nodeMetric(t, n, "pg_listener_connects_total") < connects {
			if time.Now().After(deadline) {
				t.Fatalf("node %d: listener connected %v after %d connections, want %v connections",
					i, nodeMetric(t, n, "pg_listener_connected"), int(nodeMetric(t, n, "pg_listener_connects_total")), connects)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pgProxy forwards TCP connections to a PostgreSQL server. Paused, it
// stops forwarding in both directions and closes nothing, as a network
// that silently drops the packets would: the connections look alive to
// both ends, and nothing sent on them arrives.
type pgProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	resumed chan struct{} // closed while forwarding
	ports   []int         // the local ports of the connections to the server
}

// newPgProxy forwards a listening port to the server of dsn until the
// test ends.
func newPgProxy(t testing.TB, dsn string) *pgProxy {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), resumed: make(chan struct{})}
	close(p.resumed)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		p.resume()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.ports = append(p.ports, s.LocalAddr().(*net.TCPAddr).Port)
			p.mu.Unlock()
			mu.Lock()
			open = append(open, c, s)
			mu.Unlock()
			conns.Add(2)
			go func() { defer conns.Done(); p.forward(s, c) }()
			go func() { defer conns.Done(); p.forward(c, s) }()
		}
	}()
	return p
}

// forward copies from src to dst, holding each read while paused; when
// either side ends, both are closed.
func (p *pgProxy) forward(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			resumed := p.resumed
			p.mu.Unlock()
			<-resumed
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pause stops forwarding; resume forwards again what was held and what
// comes after.
func (p *pgProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resumed:
		p.resumed = make(chan struct{})
	default:
	}
}

func (p *pgProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resumed:
	default:
		close(p.resumed)
	}
}

// dsn is the DSN of the server of base through the proxy.
func (p *pgProxy) dsn(t testing.TB, base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		t.Fatalf("the test DSN is not a URL")
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// terminateListeners ends, from the server's side, the listening
// connections that came through the proxy (pg_terminate_backend: the
// nodes see their connection fail), and only those, so that tests
// running beside this one on the same server keep theirs. It returns how
// many it ended.
func (p *pgProxy) terminateListeners(t testing.TB, dsn string) int {
	t.Helper()
	p.mu.Lock()
	ports := append([]int(nil), p.ports...)
	p.mu.Unlock()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND client_port = ANY($2)`,
		pgstore.ListenerApplicationName, ports).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// queryInt runs sql, which answers one whole number, on the database.
func queryInt(t testing.TB, dsn, sql string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
