package caddymodule

// Raw HTTP/1.1 exchanges with the test Caddy, so that nothing on the
// client side normalizes what is sent.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawResponse is one answer read from a raw connection.
type rawResponse struct {
	status  int
	header  http.Header
	trailer http.Header
	body    string
}

// rawRoundTrip writes req as it is to the test Caddy and reads one answer.
func rawRoundTrip(t testing.TB, req string) rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", itAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", firstLine(req), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, resp.Trailer, string(b)}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

// rawGet is a GET of target on the test site with extra header lines.
func rawGet(target string, headers ...string) string {
	return rawRequest("GET", target, itHost, headers...)
}

// rawRequest is a raw HTTP/1.1 request to the test site.
func rawRequest(method, target, host string, headers ...string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(append(headers, ""), "\r\n") + "Connection: close\r\n\r\n"
}
