package main

import (
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// jwsFloor is the floor of a GET whose token is not cached: the work no
// implementation can skip, done in-process with no HTTP and no store. w
// goroutines (default 2, one per core of the project's machines) take the
// run's tokens round-robin and call jws.VerifyCompactFast with the run's
// RSA public key (exported from the JWKS as the module does) and decode the
// verified payload into map[string]json.RawMessage (what the module's claim
// checks start from), for the given duration. It prints verifications per
// second.
func jwsFloor(args []string) error {
	fs := flag.NewFlagSet("jwsfloor", flag.ContinueOnError)
	jwksFile := fs.String("jwks", "", "the run's JWKS")
	tokensFile := fs.String("tokens", "", "tokens, one per line")
	workers := fs.Int("w", 2, "goroutines")
	dur := fs.Duration("d", 10*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set, err := jwk.ReadFile(*jwksFile)
	if err != nil {
		return err
	}
	key, ok := set.Key(0)
	if !ok {
		return fmt.Errorf("%s: no key", *jwksFile)
	}
	var pub rsa.PublicKey
	if err := jwk.Export(key, &pub); err != nil {
		return err
	}
	lines, err := readLines(*tokensFile)
	if err != nil {
		return err
	}
	toks := make([][]byte, len(lines))
	for i, l := range lines {
		toks[i] = []byte(l)
	}
	var next, done atomic.Int64
	var failed atomic.Pointer[error]
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				tok := toks[next.Add(1)%int64(len(toks))]
				payload, err := jws.VerifyCompactFast(&pub, tok, jwa.RS256())
				if err == nil {
					var c map[string]json.RawMessage
					err = json.Unmarshal(payload, &c)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		return *err
	}
	fmt.Fprintf(os.Stderr, "jwsfloor: %d verifications on %d goroutines in %s\n", done.Load(), *workers, elapsed.Round(time.Millisecond))
	fmt.Printf("%.1f\n", float64(done.Load())/elapsed.Seconds())
	return nil
}
