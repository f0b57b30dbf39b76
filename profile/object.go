package profile

import (
	"mime"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// object is a JSON object's members as raw JSON, looked up by the key
// they fold to, so that "userId", "UserId", "user_id" and "user-id" are one
// key. Only the keys the normalizer reads are kept, and only the members
// it reads are ever decoded. Of members whose keys fold alike, the last one
// counts, as of members with the very same key in encoding/json.
type object struct {
	m [numKeys][]byte // nil: absent
}

// The folded keys the normalizer reads, in objects of any kind.
const (
	kData = iota
	kSuccess
	kWarnings
	kErrors
	kTitle
	kDetail
	kType
	kCode
	kMessage
	kTarget
	kField
	kMetadata
	kSeverity
	kUserID
	kID
	kUID
	kUserName
	kLogin
	kLoginName
	kEmail
	kEmailAddress
	kMail
	kFirstName
	kGivenName
	kLastName
	kFamilyName
	kSurname
	kUserType
	kAccountType
	numKeys
)

// maxFoldedKey is the length of the longest folded key, "emailaddress".
const maxFoldedKey = 12

// keyIndex is the slot of the JSON string q (quotes included) as a key:
// its text without '_' and '-' and with A-Z in lower case. Keys the
// normalizer does not read are -1.
func keyIndex(q []byte) int {
	in, plain := jsonscan.Literal(q)
	if !plain {
		in = []byte(jsonscan.Unquote(q)) // escapes: rare
	}
	var buf [maxFoldedKey]byte
	n := 0
	for _, c := range in {
		switch {
		case c == '_' || c == '-':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c >= 0x80:
			return -1
		}
		if n == maxFoldedKey {
			return -1
		}
		buf[n] = c
		n++
	}
	switch string(buf[:n]) {
	case "data":
		return kData
	case "success":
		return kSuccess
	case "warnings":
		return kWarnings
	case "errors":
		return kErrors
	case "title":
		return kTitle
	case "detail":
		return kDetail
	case "type":
		return kType
	case "code":
		return kCode
	case "message":
		return kMessage
	case "target":
		return kTarget
	case "field":
		return kField
	case "metadata":
		return kMetadata
	case "severity":
		return kSeverity
	case "userid":
		return kUserID
	case "id":
		return kID
	case "uid":
		return kUID
	case "username":
		return kUserName
	case "login":
		return kLogin
	case "loginname":
		return kLoginName
	case "email":
		return kEmail
	case "emailaddress":
		return kEmailAddress
	case "mail":
		return kMail
	case "firstname":
		return kFirstName
	case "givenname":
		return kGivenName
	case "lastname":
		return kLastName
	case "familyname":
		return kFamilyName
	case "surname":
		return kSurname
	case "usertype":
		return kUserType
	case "accounttype":
		return kAccountType
	}
	return -1
}

// members fills o from the valid JSON object obj.
func (o *object) members(obj []byte) {
	for key, val, i := jsonscan.NextMember(obj, 1); i >= 0; key, val, i = jsonscan.NextMember(obj, i) {
		if k := keyIndex(key); k >= 0 {
			o.m[k] = val
		}
	}
}

// get returns the first of the keys present.
func (o *object) get(keys []int) []byte {
	for _, k := range keys {
		if v := o.m[k]; v != nil {
			return v
		}
	}
	return nil
}

// parseObject accepts a JSON object sent as JSON, or under no media type,
// text/plain or text/json, which old backends (and Go's content sniffing)
// label JSON with. Arrays, scalars, invalid JSON, prose and HTML are not
// bodies we use.
func parseObject(contentType string, body []byte, o *object) bool {
	if !jsonMediaType(contentType) {
		return false
	}
	obj, ok := jsonscan.CutObject(body)
	if ok {
		o.members(obj)
	}
	return ok
}

func jsonMediaType(contentType string) bool {
	switch contentType {
	case "", "application/json", "application/json; charset=utf-8", "application/problem+json",
		"application/problem+json; charset=utf-8", "text/plain; charset=utf-8": // what the slow way accepts, without its map
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/plain" || mt == "text/json")
}
