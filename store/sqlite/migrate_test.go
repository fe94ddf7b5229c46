package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// A file written by schema version 1 opens, migrates, and its records read
// through the fast path, which must search the covering index.
func TestMigrateFromV1(t *testing.T) {
	b := openFromVersion(t, 1,
		`INSERT INTO tenants (id, key_url, state, created_at) VALUES ('a', 'https://v.vault.azure.net/keys/k', 'active', 1)`,
		`INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, kcv, created_at)
			VALUES ('d', 'a', 'https://v.vault.azure.net/keys/k', 'kid', 'v1', 'RSA-OAEP-256', x'00', x'00', 1)`,
		`INSERT INTO records (tenant, key, dek_id, value) VALUES ('a', 'r', 'd', x'0102')`,
	)
	var v int
	if err := b.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, SchemaVersion)
	}
	if blob, err := b.GetRecord(t.Context(), "a", "r"); err != nil || string(blob) != "\x01\x02" {
		t.Fatalf("record after migration: %x, %v", blob, err)
	}
	if p := queryPlan(t, b, getRecordSQL, "r", "a"); !strings.Contains(p, "COVERING INDEX tenants_state") {
		t.Fatalf("record reads do not use the covering index: %s", p)
	}
}

// queryPlan is SQLite's plan for query with args, its steps joined by "; ".
func queryPlan(t *testing.T, b *Backend, query string, args ...any) string {
	t.Helper()
	rows, err := b.db.Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// The scheduler looks up a key's tenants for every event and check: that
// must search the key_url index, not scan every tenant.
func TestTenantsOfAKeyUseTheIndex(t *testing.T) {
	b := openFromVersion(t, SchemaVersion)
	key := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/cmk")
	if p := queryPlan(t, b, listTenantsByKeySQL, key.URL()); !strings.Contains(p, "INDEX tenants_key_url") {
		t.Fatalf("listing a key's tenants does not search the key_url index: %s", p)
	}
}

// Schema version 3 rewrites stored key ids into their canonical form, so a
// tenant added before it with another spelling of its key is found by the
// key's canonical id, and its DEKs unwrap under canonical kids.
func TestMigrateCanonicalKeyIDs(t *testing.T) {
	const spelled = "https://v.vault.azure.net:443/keys/CMK"
	b := openFromVersion(t, 2,
		`INSERT INTO tenants (id, key_url, state, created_at) VALUES ('a', '`+spelled+`', 'active', 1)`,
		`INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, prev_kid, kcv, created_at)
			VALUES ('d', 'a', '`+spelled+`', '`+spelled+`/ABC', 'ABC', 'RSA-OAEP-256', x'00', '`+spelled+`/OLD', x'00', 1)`,
	)
	key := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/cmk")
	ts, err := b.ListTenants(t.Context(), key)
	if err != nil || len(ts) != 1 || ts[0].Key != key {
		t.Fatalf("tenants of %s after migration: %+v, %v", key, ts, err)
	}
	ds, err := b.GetDEK(t.Context(), "a", "d")
	if err != nil || len(ds) != 1 {
		t.Fatalf("dek after migration: %+v, %v", ds, err)
	}
	if d := ds[0]; d.Layer != store.LayerCustomer || d.Current.KID != key.At("abc") || d.Previous == nil || d.Previous.KID != key.At("old") {
		t.Fatalf("dek after migration: %+v, %v", d, err)
	}
	if counts, err := b.VersionCounts(t.Context(), key); err != nil || counts["abc"] != 1 {
		t.Fatalf("version counts after migration: %v, %v", counts, err)
	}
}

// openFromVersion writes a file at schema version v holding rows, then
// opens it, migrating it to the current version; it is closed at test end.
func openFromVersion(t *testing.T, v int, rows ...string) *Backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", dsn(Config{Path: path}))
	if err != nil {
		t.Fatal(err)
	}
	qs := append(append(migrations[:v:v], fmt.Sprintf(`PRAGMA user_version = %d`, v)), rows...)
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	b, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
