package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// docSQL returns the sql code blocks of docs/storage.md that contain
// marker (one expected).
func docSQL(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/storage.md")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], marker) {
			found = append(found, m[1])
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/storage.md has %d sql blocks with %q, want 1", len(found), marker)
	}
	return found[0]
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// wantDocMigration checks that the block of docs/storage.md holding
// marker is migration version (its text sql) as the store runs it, in a
// transaction, with its version.
func wantDocMigration(t *testing.T, marker, sql string, version int) {
	t.Helper()
	block := docSQL(t, marker)
	want := "BEGIN;\n" + strings.ReplaceAll(sql, "{s}", "<schema>") +
		";\nINSERT INTO <schema>.schema_migrations (version) VALUES (" + strconv.Itoa(version) + ");\nCOMMIT;"
	if squeeze(block) != squeeze(want) {
		t.Fatalf("docs/storage.md shows\n%s\nmigration %d is\n%s", block, version, want)
	}
}

// TestStorageDocShowsTheKeyMigration: the block a DBA runs by hand is
// migration 3 as the store runs it, in a transaction, with its version.
func TestStorageDocShowsTheKeyMigration(t *testing.T) {
	wantDocMigration(t, "api_keys (", pgstore.APIKeysMigration, 3)
}

// TestStorageDocShowsTheDPoPMigration: the same for migration 5, the DPoP
// proofs used on any node.
func TestStorageDocShowsTheDPoPMigration(t *testing.T) {
	wantDocMigration(t, "dpop_proofs (", pgstore.DPoPProofsMigration, 5)
}

// TestStorageDocShowsTheTrackingMigration: the block a DBA runs by hand
// is migration 4 as the store runs it.
func TestStorageDocShowsTheTrackingMigration(t *testing.T) {
	block := docSQL(t, "profiles_track_change()")
	want := "BEGIN;\n" + strings.ReplaceAll(pgstore.ProfileTrackingMigration, "{s}", "<schema>") +
		";\nINSERT INTO <schema>.schema_migrations (version) VALUES (4);\nCOMMIT;"
	if squeeze(block) != squeeze(want) {
		t.Fatalf("docs/storage.md shows\n%s\nthe migration is\n%s", block, want)
	}
}

// TestRoleWithoutCreateUsesMigratedTables: a role that may create nothing
// serves profiles and API keys from a schema its owner migrated, by hand
// as docs/storage.md says, with the grants the page gives; the role
// could not have migrated it itself.
func TestRoleWithoutCreateUsesMigratedTables(t *testing.T) {
	d, ctx := dsn(t), context.Background()
	schema := freshSchema(t)
	owner := open(t, schema)
	_ = owner.Close()
	admin, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize()
	// without the key and proof tables, then the owner runs the page's
	// migration blocks
	if _, err := admin.Exec(ctx, "DROP TABLE "+q+".api_keys, "+q+".dpop_proofs; DELETE FROM "+q+".schema_migrations WHERE version IN (3, 5)"); err != nil {
		t.Fatal(err)
	}
	for _, marker := range []string{"api_keys (", "dpop_proofs ("} {
		if _, err := admin.Exec(ctx, strings.ReplaceAll(docSQL(t, marker), "<schema>", q)); err != nil {
			t.Fatalf("the page's migration block of %s: %v", marker, err)
		}
	}

	b := make([]byte, 8)
	_, _ = rand.Read(b)
	role, password := "wp_role_"+hex.EncodeToString(b), hex.EncodeToString(b)+"x"
	qrole := pgx.Identifier{role}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+qrole+" LOGIN PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), d)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP OWNED BY "+qrole)
		_, _ = c.Exec(context.Background(), "DROP ROLE "+qrole)
	})
	var dbName string
	if err := admin.QueryRow(ctx, "SELECT current_database()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "REVOKE CREATE ON DATABASE "+pgx.Identifier{dbName}.Sanitize()+" FROM "+qrole+"; "+
		"REVOKE CREATE ON SCHEMA public FROM "+qrole); err != nil {
		t.Fatal(err)
	}
	grants := strings.NewReplacer("<schema>", q, "<role>", qrole).Replace(docSQL(t, "GRANT USAGE"))
	if _, err := admin.Exec(ctx, grants); err != nil {
		t.Fatalf("the page's grants: %v", err)
	}
	u, err := url.Parse(d)
	if err != nil || u.Scheme == "" {
		t.Fatalf("this test needs a URL DSN: %v", err)
	}
	u.User = url.UserPassword(role, password)
	roleDSN := u.String()

	var mayCreate bool
	if err := admin.QueryRow(ctx, "SELECT has_database_privilege($1, current_database(), 'CREATE') OR has_schema_privilege($1, $2, 'CREATE')",
		role, schema).Scan(&mayCreate); err != nil || mayCreate {
		t.Fatalf("the role may create: %v %v", mayCreate, err)
	}
	if _, err := pgstore.Open(ctx, roleDSN, pgstore.Options{Schema: freshSchema(t), Timeout: 3 * time.Second}); err == nil {
		t.Fatal("the role migrated a schema of its own: the test proves nothing")
	}

	s, err := pgstore.Open(ctx, roleDSN, pgstore.Options{Schema: schema, Timeout: 3 * time.Second, Poll: time.Minute})
	if err != nil {
		t.Fatalf("the role cannot open the migrated schema: %v", err)
	}
	defer s.Close()
	if _, err := s.Update(ctx, "alice", func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
		cur.Email = "alice@example.com"
		return cur, true, nil
	}); err != nil {
		t.Fatalf("profile update as the role: %v", err)
	}
	w := startWatch(t, s)
	ks := s.APIKeys()
	r := newRecord(t, "alice", time.Now())
	if err := ks.Create(ctx, r); err != nil {
		t.Fatalf("key creation as the role: %v", err)
	}
	w.seen(t, r.ID, time.Second)
	if err := ks.TouchLastUsed(ctx, map[string]time.Time{r.ID: time.Now().Truncate(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Revoke(ctx, r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := ks.Import(ctx, []apikey.Record{newRecord(t, "bob", time.Now())}); err != nil {
		t.Fatalf("key import as the role: %v", err)
	}
	if err := ks.Export(ctx, func(apikey.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Lookup(ctx, apikey.HashKey("nope")); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatal(err)
	}
	for i, what := range []string{"a proof's use", "its replay"} {
		if fresh, err := s.UseDPoPProof(ctx, "jkt", proofHash(1), time.Now().Add(time.Minute)); err != nil || fresh != (i == 0) {
			t.Fatalf("%s as the role: fresh %v, %v", what, fresh, err)
		}
	}
	if _, err := admin.Exec(ctx, "INSERT INTO "+q+".dpop_proofs VALUES ('jkt', sha256('old'), now() - interval '1 minute')"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneDPoPProofs(ctx); err != nil || n != 1 {
		t.Fatalf("pruning as the role: %d, %v", n, err)
	}
}

// TestKeyMigrationLeavesProfilesAlone: migration 3 neither reads nor
// locks the profiles, so a node of an older build serving them meanwhile
// is not held up: it completes while another session holds the profiles
// table in ACCESS EXCLUSIVE mode.
func TestKeyMigrationLeavesProfilesAlone(t *testing.T) {
	d, ctx := dsn(t), context.Background()
	schema := freshSchema(t)
	_ = open(t, schema).Close()
	admin, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP TABLE "+q+".api_keys"); err != nil {
		t.Fatal(err)
	}
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+q+".profiles IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	migrator, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer migrator.Close(ctx)
	start := time.Now()
	if _, err := migrator.Exec(ctx, "SET lock_timeout = '1s'; "+strings.ReplaceAll(pgstore.APIKeysMigration, "{s}", q)); err != nil {
		t.Fatalf("migration 3 with the profiles locked: %v", err)
	}
	t.Logf("migrated in %v", time.Since(start))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	s := open(t, schema)
	defer s.Close()
	if err := s.APIKeys().Create(ctx, newRecord(t, "alice", time.Now())); err != nil {
		t.Fatal(err)
	}
}
