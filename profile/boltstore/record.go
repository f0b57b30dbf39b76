package boltstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// decodeRecord reads a stored record. Records are written by json.Marshal
// of record, so they have one shape ({"u":"…","e":"…","f":"…","l":"…",
// "t":1,"v":3}, empty members left out); that shape is read here without
// reflection, which a GET would otherwise spend half its store time on.
// Anything else (escapes, unknown or repeated members, numbers out of
// range: a file written by another version, or damaged) is handed to
// json.Unmarshal, so the answer, error included, is always encoding/json's.
func decodeRecord(v []byte) (record, error) {
	if r, ok := cutRecord(v); ok {
		return r, nil
	}
	var r record
	err := json.Unmarshal(v, &r)
	return r, err
}

func cutRecord(v []byte) (r record, ok bool) {
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return r, false
	}
	v = v[1 : len(v)-1]
	var seen [6]bool
	for first := true; len(v) > 0 || first; first = false {
		if !first {
			if v[0] != ',' {
				return r, false
			}
			v = v[1:]
		}
		// a member: "k": with a one-letter name
		if len(v) < 4 || v[0] != '"' || v[2] != '"' || v[3] != ':' {
			return r, false
		}
		name := v[1]
		v = v[4:]
		i := bytes.IndexByte([]byte("uefltv"), name)
		if i < 0 || seen[i] {
			return r, false
		}
		seen[i] = true
		if name == 't' || name == 'v' {
			end := 0
			for end < len(v) && v[end] >= '0' && v[end] <= '9' {
				end++
			}
			if end == 0 || (end > 1 && v[0] == '0') {
				return r, false
			}
			n, err := strconv.ParseUint(string(v[:end]), 10, 64)
			if err != nil {
				return r, false
			}
			if name == 't' {
				if n > 1<<31-1 {
					return r, false
				}
				r.UserType = profile.UserType(n)
			} else {
				r.Version = n
			}
			v = v[end:]
			continue
		}
		if len(v) < 2 || v[0] != '"' {
			return r, false
		}
		end := 1
		for end < len(v) && v[end] != '"' {
			if c := v[end]; c == '\\' || c < 0x20 {
				return r, false
			}
			end++
		}
		if end == len(v) {
			return r, false
		}
		s := v[1:end]
		for _, c := range s {
			if c >= utf8.RuneSelf {
				if !utf8.Valid(s) {
					return r, false
				}
				break
			}
		}
		switch name {
		case 'u':
			r.UserName = string(s)
		case 'e':
			r.Email = string(s)
		case 'f':
			r.FirstName = string(s)
		case 'l':
			r.LastName = string(s)
		}
		v = v[end+1:]
	}
	return r, seen[5] // v is always written
}
