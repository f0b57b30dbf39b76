package main

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// idp is the identity provider's side of the opaque-token row: it writes
// n fresh opaque tokens to -out (random, sub u-0 … u-<n-1> by line, the
// same users as mint's JWTs) and then serves an RFC 7662 introspection
// endpoint at http://127.0.0.1:<port>/introspect that answers them active
// (and anything else active:false) to the one client it knows, until
// SIGTERM. The client secret comes from the environment
// (BENCH_INTROSPECTION_SECRET), never the command line. GET /calls
// prints how many introspection calls it answered.
func idp(args []string) error {
	fs := flag.NewFlagSet("idp", flag.ContinueOnError)
	port := fs.Int("port", 0, "port on 127.0.0.1")
	n := fs.Int("n", 10000, "number of opaque tokens")
	out := fs.String("out", "", "file for the tokens, one per line")
	iss := fs.String("iss", "https://bench-idp.invalid", "issuer")
	aud := fs.String("aud", "workspace-api", "audience")
	clientID := fs.String("client-id", "bench-edge", "the one client allowed to introspect")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := os.Getenv("BENCH_INTROSPECTION_SECRET")
	if *port < 1 || *n < 1 || *out == "" || secret == "" {
		return fmt.Errorf("want -port, -n >= 1, -out and BENCH_INTROSPECTION_SECRET")
	}
	// the answers are made once: the endpoint's own cost stays small
	// beside the route's, as a provider's cache would keep it
	now := time.Now().Unix()
	answers := make(map[string][]byte, *n)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	raw := make([]byte, 24)
	for i := range *n {
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		tok := "bench." + hex.EncodeToString(raw)
		answers[tok], err = json.Marshal(map[string]any{
			"active": true, "iss": *iss, "aud": *aud, "sub": "u-" + strconv.Itoa(i),
			"client_id": "bench-app", "token_type": "Bearer", "scope": "profile",
			"iat": now, "exp": 4102444800, // 2100-01-01
		})
		if err != nil {
			return err
		}
		w.WriteString(tok)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	var calls atomic.Int64
	inactive := []byte(`{"active":false}`)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(rw http.ResponseWriter, r *http.Request) {
		id, pass, ok := r.BasicAuth()
		if !ok || id != *clientID || subtle.ConstantTimeCompare([]byte(pass), []byte(secret)) != 1 {
			rw.Header().Set("WWW-Authenticate", `Basic realm="bench-idp"`)
			http.Error(rw, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(rw, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		answer, ok := answers[r.PostForm.Get("token")]
		if !ok {
			answer = inactive
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		_, _ = rw.Write(answer)
	})
	mux.HandleFunc("GET /calls", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, calls.Load())
	})
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "idp: %d opaque tokens in %s, introspection at http://%s/introspect\n", *n, *out, l.Addr())
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	fmt.Fprintf(os.Stderr, "idp: answered %d introspection calls\n", calls.Load())
	return nil
}
