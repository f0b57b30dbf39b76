package main

import (
	"bufio"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
