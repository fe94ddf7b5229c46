package postgres_test

import (
	"os"
	"testing"

	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// migrateTo brings the schema to version v with the migration files as
// released, as a cmkd of that version would have left it.
func migrateTo(t *testing.T, s pgtest.Schema, v int, names ...string) {
	t.Helper()
	c := raw(t, s)
	if _, err := c.Exec(t.Context(), `CREATE TABLE schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for i, name := range names[:v] {
		sql, err := os.ReadFile("migrations/" + name + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(t.Context(), string(sql)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, name); err != nil {
			t.Fatal(err)
		}
	}
}

// A schema written before sinks had state of their own migrates without
// publishing anything again: what was sent stays sent for NATS, what was
// not is still NATS's to send, and a new sink starts after both.
func TestMigrateKeepsOutboxStateAsNATSSink(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	migrateTo(t, s, 2, "0001_initial", "0002_layers")
	c := raw(t, s)
	for _, q := range []string{
		`INSERT INTO outbox (id, tenant, kind, event_time, data, sent_at) VALUES ('sent', 'a', 'key.expired', 1, '{}', 5)`,
		`INSERT INTO outbox (id, tenant, kind, event_time, data) VALUES ('unsent', 'a', 'key.expired', 2, '{}')`,
	} {
		if _, err := c.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	b := open(t, s)
	storetest.MigratedOutbox(t, b)
}
