package profile

import (
	"bytes"
	"encoding/json"
	"testing"
)

func checkAppendJSON(t *testing.T, e Envelope) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := e.AppendJSON([]byte("prefix"))
	if werr != nil || gerr != nil {
		t.Fatalf("errors: %v %v", werr, gerr)
	}
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got[len("prefix"):], want)
	}
}

func envelopeOf(id, name, email, first, last string, typ int, success bool) Envelope {
	p := Profile{UserID: id, UserName: name, Email: email, FirstName: first, LastName: last, UserType: UserType(typ)}
	e := OK(p)
	e.Success = success
	return e
}

// AppendJSON must write exactly what json.Marshal writes.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	checkAppendJSON(t, envelopeOf("u-1", "alice", "a@example.com", "Alice", "Liddell", 0, true))
	checkAppendJSON(t, envelopeOf("u-1", "", "", "", "", 2, true))
	checkAppendJSON(t, envelopeOf("<&>\"\\\b\f\n\r\t\x00\x1f\x7f", "\u2028\u2029é\xff\xc3", "日本", "a\u00a0b", "😀", 1, false))
	checkAppendJSON(t, Envelope{Errors: Items{}, Warnings: Items{}})
	checkAppendJSON(t, Envelope{})
	checkAppendJSON(t, Failed(NotFoundItem()))
	checkAppendJSON(t, OK(Profile{UserID: "u"}, NoChangesWarning()))
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("u-1", "alice", "a@example.com", "Alice", "<b>&", 1, true)
	f.Add("\xff\u2028", "", "\x00", "\"\\", "é", -3, false)
	f.Fuzz(func(t *testing.T, id, name, email, first, last string, typ int, success bool) {
		checkAppendJSON(t, envelopeOf(id, name, email, first, last, typ, success))
	})
}
