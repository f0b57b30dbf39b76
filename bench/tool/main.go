// Command tool is the Go side of bench/run, the project's end-to-end load
// benchmark, and of bench/soak, its memory soak. It is not part of the module's API and nothing imports it; it
// uses only the standard library, jwx and bbolt (already in go.mod), so it
// does not depend on the packages under caddymodule/ or profile/.
//
//	tool ports N                   print N free TCP ports on 127.0.0.1
//	tool mint -dir D -n N ...      write D/jwks.json and N RS256 (or -alg ES256) tokens to D/tokens.txt
//	tool prime -url U -tokens F    send one request per token, fail unless every answer is 200
//	tool boltbatch -path P ...     bbolt's own Batch from 32 writers: ops/s
//	tool jwsfloor -jwks F ...      jws.VerifyCompactFast + claims decode: verifications/s
//	tool soak -url U -tokens F -pid P ...  mixed GET/PUT load, the server's RSS and heap every 10 s
//	tool idp -port P -n N -out F ...  write N opaque tokens to F, then answer their RFC 7662 introspection
//
// The measuring subcommands print their figure alone on stdout (details go
// to stderr), so bench/run can read it like wrk's Requests/sec.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "ports":
		err = ports(args)
	case "mint":
		err = mint(args)
	case "prime":
		err = prime(args)
	case "boltbatch":
		err = boltBatch(args)
	case "jwsfloor":
		err = jwsFloor(args)
	case "soak":
		err = soak(args)
	case "idp":
		err = idp(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench tool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tool ports|mint|prime|boltbatch|jwsfloor|soak|idp [flags]")
	os.Exit(2)
}
