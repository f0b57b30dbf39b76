// Package apikey is the domain of API keys, without Caddy: the key format
// the module makes (<prefix><id>_<secret>), the stored record (the SHA-256
// of the whole key, never the key), the Store every backend implements,
// and the Keyring that verifies a presented key against a store with the
// caches and bounds that keep a spray of random keys off the database.
//
// A key is looked up by its hash, so keys made elsewhere (the legacy API's
// own, whatever their format) can be imported by their hash alone.
package apikey
