// Package apikey is the domain of API keys, without Caddy: the key format
// the module makes (<prefix><id>_<secret>), the stored record (the SHA-256
// of the whole key, never the key), the Store every backend implements
// (apikey/storetest is the suite each passes), the Keyring that verifies a
// presented key against a store with the caches and bounds that keep a
// spray of random keys off the database, and the export and import lines
// of records (with the trailer of the profile exports).
//
// A key is looked up by its hash, so keys made elsewhere (the legacy API's
// own, whatever their format) can be imported by their hash alone.
package apikey
