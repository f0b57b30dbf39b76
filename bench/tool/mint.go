package main

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// mint makes a fresh key for this run only (RSA-2048 for RS256, the default;
// P-256 for ES256, which signs a million tokens in seconds where RSA takes
// minutes), writes its public half as dir/jwks.json and n tokens (sub u-0 …
// u-<n-1>) to dir/tokens.txt, one per line. The private key never leaves
// this process.
func mint(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	dir := fs.String("dir", "", "output directory")
	n := fs.Int("n", 10000, "number of tokens")
	iss := fs.String("iss", "https://bench-idp.invalid", "issuer")
	aud := fs.String("aud", "workspace-api", "audience")
	algName := fs.String("alg", "RS256", "RS256 (RSA-2048) or ES256 (P-256)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *n < 1 {
		return fmt.Errorf("want -dir and -n >= 1")
	}
	var priv crypto.Signer
	var alg jwa.SignatureAlgorithm
	var err error
	switch *algName {
	case "RS256":
		alg = jwa.RS256()
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		alg = jwa.ES256()
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return fmt.Errorf("-alg %q: want RS256 or ES256", *algName)
	}
	if err != nil {
		return err
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return err
	}
	const kid = "bench-run"
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return err
	}
	if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
		return err
	}
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return err
	}
	buf, err := json.Marshal(set)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "jwks.json"), buf, 0o644); err != nil {
		return err
	}

	f, err := os.Create(filepath.Join(*dir, "tokens.txt"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.KeyIDKey, kid); err != nil {
		return err
	}
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		return err
	}
	// Signing 10,000 RSA tokens takes seconds: spread it over the cores.
	now := time.Now().Unix()
	toks := make([][]byte, *n)
	errs := make(chan error, runtime.NumCPU())
	var next atomic.Int64
	for range runtime.NumCPU() {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					errs <- nil
					return
				}
				payload, err := json.Marshal(map[string]any{
					"iss": *iss, "aud": *aud, "sub": fmt.Sprintf("u-%d", i),
					"iat": now, "exp": 4102444800, // 2100-01-01
				})
				if err == nil {
					toks[i], err = jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range runtime.NumCPU() {
		if err := <-errs; err != nil {
			return err
		}
	}
	for _, tok := range toks {
		w.Write(tok)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
