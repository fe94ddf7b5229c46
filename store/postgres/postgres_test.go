package postgres_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// open opens a Backend on schema, closed when the test ends.
func open(t testing.TB, s pgtest.Schema) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(t.Context(), postgres.Config{DSN: s.URL, Schema: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// The suite's database paths name databases; here each is a schema of
// its own, made at the path's first open. Every open is a pool of its own:
// another process, as far as PostgreSQL can tell.
func TestConformance(t *testing.T) {
	t.Parallel()
	pgtest.URL(t)
	var mu sync.Mutex
	schemas := map[string]pgtest.Schema{}
	storetest.Run(t, func(t *testing.T, path string) store.Backend {
		t.Helper()
		mu.Lock()
		s, ok := schemas[path]
		if !ok {
			s = pgtest.NewSchema(t)
			schemas[path] = s
		}
		mu.Unlock()
		b, err := postgres.Open(t.Context(), postgres.Config{DSN: s.URL, Schema: s.Name})
		if err != nil {
			t.Fatal(err)
		}
		return b // the suite closes it
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg   postgres.Config
		field string
	}{
		{postgres.Config{}, "DSN"},
		{postgres.Config{DSN: "postgres://h/db", Schema: "Upper"}, "Schema"},
		{postgres.Config{DSN: "postgres://h/db", Schema: "a-b"}, "Schema"},
		{postgres.Config{DSN: "postgres://h/db", Schema: "pg_x"}, "Schema"},
		{postgres.Config{DSN: "postgres://h/db", Schema: "1a"}, "Schema"},
		{postgres.Config{DSN: "postgres://h/db", Schema: strings.Repeat("a", 64)}, "Schema"},
		{postgres.Config{DSN: "postgres://h/db", MaxConns: -1}, "MaxConns"},
		{postgres.Config{DSN: "postgres://h/db", StatementTimeout: -1}, "StatementTimeout"},
		{postgres.Config{DSN: "postgres://h:notaport/db"}, "DSN"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", c.cfg, err, c.field)
		}
	}
	for _, s := range []string{"", "cmkd", "_x", "a1_b", strings.Repeat("a", 63)} {
		if err := (postgres.Config{DSN: "postgres://h/db", Schema: s}).Validate(); err != nil {
			t.Errorf("schema %q: %v", s, err)
		}
	}
}
