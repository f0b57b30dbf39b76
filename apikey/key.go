package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Defaults of the route's api_keys options.
const (
	DefaultPrefix = "wsk_"
	DefaultHeader = "X-Api-Key"
)

// Shape of the keys the module makes: <prefix><id>_<secret>, the id 16
// lowercase letters and digits, the secret 43 base64url characters (256
// random bits).
const (
	IDLen     = 16
	SecretLen = 43
	// MaxKeyLen bounds any presented key, made here or imported by hash:
	// a longer value is refused without a store read.
	MaxKeyLen = 512
	// MaxPrefixLen bounds the prefix option.
	MaxPrefixLen = 32
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// Hash is the SHA-256 of a whole key: the only form a key is stored in,
// and the lookup key of its record.
type Hash [sha256.Size]byte

// HashKey hashes a presented key.
func HashKey(key string) Hash { return sha256.Sum256([]byte(key)) }

// String is the hash in lowercase hex, as exports and imports carry it.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hash in hex (64 characters, either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, errors.New("a key hash is 64 hex digits")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, errors.New("a key hash is 64 hex digits")
	}
	return h, nil
}

// CheckPrefix is the rule of the prefix option: 1 to MaxPrefixLen ASCII
// letters, digits and "_", not starting with "ey" (every JSON object's
// base64url starts so: a JWT must never be taken for a key), any case.
func CheckPrefix(p string) error {
	if p == "" || len(p) > MaxPrefixLen {
		return errors.New("api_keys prefix must be 1 to 32 characters")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return errors.New("api_keys prefix may hold only letters, digits and _")
		}
	}
	if strings.HasPrefix(strings.ToLower(p), "ey") {
		return errors.New(`api_keys prefix must not start with "ey": JWTs do`)
	}
	return nil
}

// Generate makes a new key with prefix, from crypto/rand: the key, to be
// shown once, and its id, which names it everywhere else.
func Generate(prefix string) (key, id string, err error) {
	var idb [IDLen]byte
	if err := randomID(idb[:]); err != nil {
		return "", "", err
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", err
	}
	id = string(idb[:])
	return prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:]), id, nil
}

// randomID fills b with letters of idAlphabet, uniformly (rejection
// sampling: 252 is the largest multiple of 36 below 256).
func randomID(b []byte) error {
	var buf [64]byte
	n := 0
	for n < len(b) {
		if _, err := rand.Read(buf[:]); err != nil {
			return err
		}
		for _, c := range buf {
			if c >= 252 {
				continue
			}
			b[n] = idAlphabet[c%36]
			if n++; n == len(b) {
				break
			}
		}
	}
	return nil
}

// ParseMade reports whether key has the shape of a key made here under
// prefix, and its id. Keys of other shapes may still be valid (imported
// by hash); this only tells which id a well-formed key claims.
func ParseMade(prefix, key string) (id string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found || len(rest) != IDLen+1+SecretLen || rest[IDLen] != '_' {
		return "", false
	}
	id, secret := rest[:IDLen], rest[IDLen+1:]
	for i := 0; i < len(id); i++ {
		if strings.IndexByte(idAlphabet, id[i]) < 0 {
			return "", false
		}
	}
	// the decoder skips \r and \n: every character is checked first
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}

// Presentable reports whether a presented value could be a key at all:
// 1 to MaxKeyLen visible ASCII characters. Anything else is refused
// without a store read.
func Presentable(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return false
		}
	}
	return true
}
