package profile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with ../testdata/golden/name byte for byte.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./profile -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestGoldenBodies(t *testing.T) {
	alice := Profile{UserID: "u-42", UserName: "alice", Email: "alice@example.com", FirstName: "Alice", LastName: "Liddell", Version: 3}
	_, verrs := UpdateRequest{UserName: ptr("a$"), Email: ptr("nope")}.Validate()
	_, warnings, _ := BindUpdate([]byte(`{"Nick":"x"}`))
	cases := map[string]any{
		"envelope-ok.json":         OK(alice),
		"envelope-ok-cleared.json": OK(Profile{UserID: "u-7", UserName: "bob", UserType: UserTypeAdmin}),
		"envelope-no-changes.json": OK(alice, NewWarning(CodeNoChanges, "The request changes nothing; the profile is as it was.", "")),
		"envelope-validation.json": func() Envelope { e := Failed(verrs...); e.Warnings = warnings; return e }(),
		"envelope-not-found.json":  Failed(NotFoundItem()),
		"envelope-storage.json":    Failed(StorageUnavailableItem()),
		"envelope-zero.json":       Envelope{},
		"problem-403.json": NewProblem(403, "ServiceAccountForbidden", "Service accounts cannot access this endpoint via API keys.",
			"/api/workspace/account/profile", "00000000-0000-0000-0000-000000000000"),
		"problem-401.json": NewProblem(401, "TokenExpired", "The token has expired.", "/api/workspace/account/profile", ""),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, got)
		})
	}
}
