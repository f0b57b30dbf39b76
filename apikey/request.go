package apikey

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// MaxCreateRequestBytes bounds the body of a request to create a key: the
// four members at their longest fit in well under 4 KiB.
const MaxCreateRequestBytes = 4 << 10

// ErrRequestTooLarge is returned for a create request over
// MaxCreateRequestBytes (a 413, where every other refusal is a 400).
var ErrRequestTooLarge = fmt.Errorf("the request body is longer than %d bytes", MaxCreateRequestBytes)

// CreateRequest is a checked request to create a key:
//
//	{"subject":"...","kind":"user"|"service","name":"...","expires":"<RFC 3339>"}
//
// subject and kind are required; name and expires may be left out (or
// null). Expires is zero for a key that does not expire, else in UTC.
type CreateRequest struct {
	Subject string
	Kind    Kind
	Name    string
	Expires time.Time
}

// ReadCreateRequest reads at most MaxCreateRequestBytes of r (more is
// ErrRequestTooLarge) and checks it with ParseCreateRequest.
func ReadCreateRequest(r io.Reader, now time.Time) (CreateRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxCreateRequestBytes+1))
	if err != nil {
		return CreateRequest{}, err
	}
	if len(body) > MaxCreateRequestBytes {
		return CreateRequest{}, ErrRequestTooLarge
	}
	return ParseCreateRequest(body, now)
}

// createMembers are the members a create request may have.
var createMembers = []string{"subject", "kind", "name", "expires"}

// ParseCreateRequest checks body strictly and returns the request, or an
// error whose message says precisely what is wrong, for a 400 answer:
// the body must be one JSON object read one way only (jsonscan.CheckStrict:
// valid UTF-8, no control characters, no member named twice), with only
// the members of CreateRequest, each a string (null for an optional one);
// subject by the rule of a profile's UserId (profile.UserIDProblems),
// kind user or service, name at most MaxNameLen characters, expires an
// RFC 3339 time after now. Messages never repeat the values sent.
func ParseCreateRequest(body []byte, now time.Time) (CreateRequest, error) {
	var req CreateRequest
	if err := jsonscan.CheckStrict(body); err != nil {
		if errors.Is(err, jsonscan.ErrDuplicate) {
			return req, errors.New("the body names a member twice")
		}
		return req, fmt.Errorf("the body is not acceptable JSON: %v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return req, errors.New(`the body must be one JSON object: {"subject","kind","name","expires"}`)
	}
	for name := range members {
		if !containsString(createMembers, name) {
			return req, fmt.Errorf("unknown member %s: the members are subject, kind, name and expires", quoteName(name))
		}
	}
	get := func(name string, required bool) (string, bool, error) {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			if required {
				return "", false, fmt.Errorf("%s is required", name)
			}
			return "", false, nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false, fmt.Errorf("%s must be a string", name)
		}
		return s, true, nil
	}
	subject, _, err := get("subject", true)
	if err != nil {
		return req, err
	}
	if items := profile.UserIDProblems(subject); len(items) > 0 {
		return req, fmt.Errorf("subject: %s", strings.ReplaceAll(items[0].Message, "UserId", "subject"))
	}
	kind, _, err := get("kind", true)
	if err != nil {
		return req, err
	}
	if !Kind(kind).Valid() {
		return req, errors.New(`kind must be "user" or "service"`)
	}
	name, _, err := get("name", false)
	if err != nil {
		return req, err
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLen {
		return req, fmt.Errorf("name is %d characters long; at most %d are allowed", n, MaxNameLen)
	}
	expires, set, err := get("expires", false)
	if err != nil {
		return req, err
	}
	var exp time.Time
	if set {
		exp, err = time.Parse(time.RFC3339, expires)
		if err != nil {
			return req, errors.New(`expires must be an RFC 3339 time such as "2030-01-02T15:04:05Z"`)
		}
		if !exp.After(now) {
			return req, errors.New("expires must lie in the future")
		}
		exp = exp.UTC()
	}
	return CreateRequest{Subject: subject, Kind: Kind(kind), Name: name, Expires: exp}, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quoteName quotes a member name for a message, cut to 40 characters so
// that an answer never grows with what was sent.
func quoteName(name string) string {
	if utf8.RuneCountInString(name) > 40 {
		name = string([]rune(name)[:40]) + "…"
	}
	return fmt.Sprintf("%q", name)
}
