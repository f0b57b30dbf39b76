package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// bigFile is a hand-written import of n profiles of about 330 bytes each.
func bigFile(prefix string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"UserId":"%s-%06d","UserName":"%s-%06d","Email":"%s%06d@example.com","FirstName":"%s","LastName":"%s","UserType":1}`+"\n",
			prefix, i, prefix, i, prefix, i, strings.Repeat("F", 100), strings.Repeat("L", 100))
	}
	return b.String()
}

// stalledExport starts an export on the admin endpoint with a client that
// reads a few bytes and then stops reading, through a socket with a small
// receive buffer; it returns when the export has stopped on the stalled
// socket, and closes the socket at the end of the test.
func stalledExport(t *testing.T, query string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	adminHost := strings.TrimPrefix(itAdmin, "http://")
	conn, err := d.Dial("tcp", adminHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, "GET /workspace-profile/profiles"+query+" HTTP/1.1\r\nHost: "+adminHost+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("export: %v %v", resp, err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 300)); err != nil {
		t.Fatal(err)
	}
	// and now it reads no more: let the server fill every buffer
	time.Sleep(time.Second)
}

// TestExportStalledClientDoesNotFreezeBolt: a client that stops reading
// an export of 30000 profiles (10 MB, more than the socket buffers hold)
// does not keep the bolt store from growing: an import of 40000 more
// profiles, which makes bbolt remap its grown file (a remap waits for
// every read transaction), and PUTs on the route all complete in bounded
// time while the export client is still stalled.
//
// The export's stall timeout is made far longer than the bounds, so that
// a write waiting for the stalled client fails the test whatever the
// machine's speed, and the bounds can be generous (under -race on a busy
// machine the import alone may take 20 s).
func TestExportStalledClientDoesNotFreezeBolt(t *testing.T) {
	old := exportStallNanos.Swap(int64(10 * time.Minute))
	t.Cleanup(func() { exportStallNanos.Store(old) })
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}})
	start := time.Now()
	if status, raw := adminDo(t, "POST", "?verify=off", strings.NewReader(bigFile("seed", 0, 30000))); status != 200 {
		t.Fatalf("seed: %d %.300s", status, raw)
	}
	t.Logf("seeded 30000 profiles in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	stalledExport(t, "")
	t.Logf("export stalled after %v", time.Since(start).Round(time.Millisecond))

	type result struct {
		status int
		took   time.Duration
		err    error
	}
	bounded := func(what string, limit time.Duration, req func(ctx context.Context) (int, error)) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		start := time.Now()
		status, err := req(ctx)
		r := result{status, time.Since(start), err}
		if err != nil || status != 200 {
			t.Fatalf("%s during a stalled export: status %d after %v, %v", what, status, r.took.Round(time.Millisecond), err)
		}
		return r
	}
	send := func(ctx context.Context, method, url string, hdr map[string]string, body string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		// bounded by ctx alone: caddytest's client gives up after 5 s, which
		// a 40000-line import under -race on a busy machine can take
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	r := bounded("an import of 40000 profiles", 2*time.Minute, func(ctx context.Context) (int, error) {
		return send(ctx, "POST", itAdmin+"/workspace-profile/profiles?verify=off", nil, bigFile("more", 0, 40000))
	})
	t.Logf("import of 40000 profiles during the stalled export: %v", r.took.Round(time.Millisecond))
	var worst time.Duration
	for i := range 20 {
		tok := k.Mint(t, jwtauthtest.Claims(fmt.Sprintf("put-%d", i)), nil)
		body := fmt.Sprintf(`{"UserName":"put-%d","FirstName":"%s","LastName":"%s"}`, i, strings.Repeat("P", 100), strings.Repeat("Q", 100))
		r := bounded("a PUT", 15*time.Second, func(ctx context.Context) (int, error) {
			return send(ctx, "PUT", itBase+profilePath, jsonPut(tok, ""), body)
		})
		worst = max(worst, r.took)
	}
	t.Logf("20 PUTs during the stalled export: worst %v", worst.Round(time.Millisecond))
}
