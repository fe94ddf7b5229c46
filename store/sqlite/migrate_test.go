package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// A file written by schema version 1 opens, migrates, and its records read
// through the fast path, which must search the covering index.
func TestMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", dsn(Config{Path: path}))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], `PRAGMA user_version = 1`,
		`INSERT INTO tenants (id, key_url, state, created_at) VALUES ('a', 'https://v.vault.azure.net/keys/k', 'active', 1)`,
		`INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, kcv, created_at)
			VALUES ('d', 'a', 'https://v.vault.azure.net/keys/k', 'kid', 'v1', 'RSA-OAEP-256', x'00', x'00', 1)`,
		`INSERT INTO records (tenant, key, dek_id, value) VALUES ('a', 'r', 'd', x'0102')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	b, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v int
	if err := b.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, SchemaVersion)
	}
	if blob, err := b.GetRecord(t.Context(), "a", "r"); err != nil || string(blob) != "\x01\x02" {
		t.Fatalf("record after migration: %x, %v", blob, err)
	}
	rows, err := b.db.Query(`EXPLAIN QUERY PLAN `+getRecordSQL, "r", "a")
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
	if p := strings.Join(plan, "; "); !strings.Contains(p, "COVERING INDEX tenants_state") {
		t.Fatalf("record reads do not use the covering index: %s", p)
	}
}
