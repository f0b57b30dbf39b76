package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAPIKeyCreationKill9 (threat row G10, see docs/threat-model.md): a
// node is killed with SIGKILL while many key creations run on its admin
// endpoint, on a bolt file and on PostgreSQL. Restarted on the same
// store, every key whose 201 was received works (a user's reads its
// owner's profile, a service account's gets the 403), the list answers
// with whole records and no key material, and it holds at least the keys
// acknowledged (a record committed whose answer never left is a key no
// one holds).
func TestAPIKeyCreationKill9(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storage func(t *testing.T) string
	}{
		{"bolt", func(t *testing.T) string { return "storage bolt " + filepath.Join(t.TempDir(), "keys.db") }},
		{"postgres", func(t *testing.T) string {
			return fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s", pgSchema(t, pgDSN(t)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { keyCreationKill9(t, tc.storage(t)) })
	}
}

func keyCreationKill9(t *testing.T, storage string) {
	s := newSigner(t)
	first := startKeyNode(t, s, storage)
	const workers = 16
	crashClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer crashClient.CloseIdleConnections()
	var (
		mu    sync.Mutex
		acked []madeKey
		sent  atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				kind := "user"
				if (w+i)%3 == 0 {
					kind = "service"
				}
				sent.Add(1)
				resp, err := crashClient.Post(first.admin+"/workspace-profile/api-keys", "application/json",
					strings.NewReader(fmt.Sprintf(`{"subject":"crash-%d-%d","kind":%q,"name":"kill9"}`, w, i, kind)))
				if err != nil {
					return // the process is gone
				}
				var k madeKey
				derr := json.NewDecoder(resp.Body).Decode(&k)
				resp.Body.Close()
				if resp.StatusCode != 201 || derr != nil {
					if derr == nil { // a whole answer that is not a 201: a fault before the kill
						t.Errorf("create: %d", resp.StatusCode)
					}
					return
				}
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
			}
		}()
	}
	// kill once creations are well under way (100 acknowledged)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.proc.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.proc.cmd.Wait()
	stop.Store(true)
	wg.Wait()
	t.Logf("SIGKILL after %d creations acknowledged of %d sent", len(acked), sent.Load())
	if len(acked) < 40 {
		t.Fatalf("only %d creations acknowledged before the kill: the load did not run", len(acked))
	}

	second := startKeyNode(t, s, storage) // the same store: it opens
	resp, err := client.Get(second.admin + "/workspace-profile/api-keys")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); resp.StatusCode != 200 || err != nil {
		t.Fatalf("list after the restart: %d %v", resp.StatusCode, err)
	}
	listed := map[string]bool{}
	for _, rec := range list {
		for _, f := range []string{"id", "subject", "kind", "name", "created"} {
			if v, _ := rec[f].(string); v == "" {
				t.Errorf("a record without %s: %v", f, rec)
			}
		}
		if _, ok := rec["hash"]; ok {
			t.Errorf("the list shows a hash: %v", rec)
		}
		id, _ := rec["id"].(string)
		listed[id] = true
	}
	if len(list) < len(acked) || int64(len(list)) > sent.Load() {
		t.Fatalf("%d records after the restart, %d keys acknowledged of %d sent", len(list), len(acked), sent.Load())
	}
	t.Logf("%d records after the restart for %d acknowledged keys", len(list), len(acked))
	for _, k := range acked {
		if !listed[k.ID] {
			t.Errorf("acknowledged key %s is not listed", k.ID)
		}
		if secret := k.Key[len("wsk_")+16+1:]; strings.Contains(string(raw), secret) {
			t.Fatalf("the list shows key material")
		}
		if k.Kind == "service" {
			wantServiceRefused(t, second.url, k.Key)
			continue
		}
		if st, body := withKey(t, second.url, k.Key); st != 200 || !strings.Contains(body, `"UserId":"`+k.Subject+`"`) {
			t.Errorf("acknowledged key %s after the restart: %d %s", k.ID, st, body)
		}
	}
}
