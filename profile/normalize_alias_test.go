package profile

import (
	"encoding/json"
	"testing"
)

// The upstream path reuses the buffer a backend's answer was read into
// once the answer is written, so nothing Normalize returns may share bytes
// with the body it read: overwriting the body afterwards must leave the
// result as it was.
func TestNormalizeKeepsNothingOfTheBody(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
	}{
		{200, `{"userId":"u-42","userName":"alice","email":"a@example.com","firstName":"Alice","lastName":"L","userType":1}`},
		{200, `{"Data":{"UserId":"u-1","UserName":"bob"},"Errors":[],"Warnings":[{"Code":"W","Message":"m","Metadata":{"k":"v"}}],"Success":true}`},
		{400, `{"Data":null,"Errors":[{"Code":"UserNameTaken","Message":"taken","Field":"UserName","Metadata":{"a":"b"}}],"Success":false}`},
		{400, `{"type":"t","title":"One or more validation errors occurred.","status":400,"errors":{"Email":["The Email field is not valid."]}}`},
		{404, `{"message":"no such user"}`},
	} {
		body := []byte(c.body)
		n := Normalize(LegacyResponse{Status: c.status, ContentType: "application/json", Body: body})
		before, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range body {
			body[i] = 'X'
		}
		after, _ := json.Marshal(n)
		if string(before) != string(after) {
			t.Errorf("%d %s: the result changed with its body:\n%s\n%s", c.status, c.body, before, after)
		}
	}
}
