package postgres_test

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// newSchemaGone gives the test a schema name that does not exist yet, as
// on a new database: the first Open creates it.
func newSchemaGone(t *testing.T) pgtest.Schema {
	t.Helper()
	s := pgtest.NewSchema(t)
	if _, err := raw(t, s).Exec(t.Context(), `DROP SCHEMA `+s.Name); err != nil {
		t.Fatal(err)
	}
	return s
}

func schemaExists(t *testing.T, s pgtest.Schema) bool {
	t.Helper()
	var ok bool
	if err := raw(t, s).QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, s.Name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Replicas starting together on a new database, each with its pool, all
// open; one of them migrates, in one transaction, and the others find the
// schema current.
func TestConcurrentFirstOpen(t *testing.T) {
	t.Parallel()
	const openers = 8
	s := newSchemaGone(t)
	start := make(chan struct{})
	errs := make(chan error, openers)
	for range openers {
		go func() {
			<-start
			b, err := postgres.Open(t.Context(), postgres.Config{DSN: s.URL, Schema: s.Name})
			if err == nil {
				_, err = b.ListTenants(t.Context(), cmkd.KeyID{})
				b.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range openers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	var versions, max, txs int
	err := raw(t, s).QueryRow(t.Context(), `SELECT count(*), max(version), count(DISTINCT xmin::text) FROM schema_migrations`).
		Scan(&versions, &max, &txs)
	if err != nil {
		t.Fatal(err)
	}
	if versions != postgres.SchemaVersion || max != postgres.SchemaVersion || txs != 1 {
		t.Fatalf("schema_migrations: %d versions up to %d written by %d transactions; want %d written by 1",
			versions, max, txs, postgres.SchemaVersion)
	}
}

// A schema a newer cmkd migrated is refused, whether or not Open may
// migrate, and by Migrate.
func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	cfg := postgres.Config{DSN: s.URL, Schema: s.Name}
	open(t, s).Close()
	if _, err := raw(t, s).Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')`,
		postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	for _, noMigrate := range []bool{false, true} {
		cfg.NoMigrate = noMigrate
		b, err := postgres.Open(t.Context(), cfg)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			if b != nil {
				b.Close()
			}
			t.Fatalf("open (NoMigrate %v) of a newer schema = %v, want ErrSchemaTooNew", noMigrate, err)
		}
	}
	if err := postgres.Migrate(t.Context(), cfg); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("migrate of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// With NoMigrate, Open of a schema behind the binary fails, saying to run
// cmkd migrate, and changes nothing; after Migrate it opens.
func TestNoMigrateRefusesSchemaBehind(t *testing.T) {
	t.Parallel()
	s := newSchemaGone(t)
	cfg := postgres.Config{DSN: s.URL, Schema: s.Name, NoMigrate: true}
	b, err := postgres.Open(t.Context(), cfg)
	if !errors.Is(err, store.ErrSchemaBehind) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("open without migrating a new database = %v, want ErrSchemaBehind", err)
	}
	if schemaExists(t, s) {
		t.Fatal("open without migrating created the schema")
	}
	if err := postgres.Migrate(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(t.Context(), cfg); err != nil {
		t.Fatalf("migrate of a current schema: %v", err)
	}
	b, err = postgres.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open without migrating after migrate: %v", err)
	}
	defer b.Close()
	addTenant(t, b, "a")
}

// A migration waits for the advisory lock of its schema, held here as
// another replica migrating would hold it, and goes on once it is free;
// the lock of another schema does not hold it up, nor does it hold up
// the open of a schema already current.
func TestMigrationTakesAdvisoryLock(t *testing.T) {
	t.Parallel()
	s, other, current := newSchemaGone(t), newSchemaGone(t), pgtest.NewSchema(t)
	open(t, current).Close()

	holder := raw(t, s)
	for _, name := range []string{s.Name, current.Name} {
		if _, err := holder.Exec(t.Context(), `SELECT pg_advisory_lock($1, $2)`, int32(postgres.LockClass), postgres.LockKey(name)); err != nil {
			t.Fatal(err)
		}
	}
	app := appName(s)
	done := async(func() error {
		b, err := postgres.Open(t.Context(), postgres.Config{DSN: pgtest.With(s.URL, "application_name", app), Schema: s.Name})
		if err == nil {
			b.Close()
		}
		return err
	})
	waitBlocked(t, s, app, "advisory")

	// Meanwhile, another schema migrates and a current one opens.
	open(t, other).Close()
	open(t, current).Close()

	notYet(t, done, "open under the held migration lock")
	if _, err := holder.Exec(t.Context(), `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	if err := await(t, done, "open after the lock was released"); err != nil {
		t.Fatal(err)
	}
}

// Migrations are numbered from 1 without gaps.
func TestMigrationFilesNumbered(t *testing.T) {
	t.Parallel()
	file := &fstest.MapFile{Data: []byte("SELECT 1")}
	for _, c := range []struct {
		files []string
		ok    bool
	}{
		{[]string{"0001_a.sql", "0002_b.sql"}, true},
		{[]string{"0001_a.sql", "0003_c.sql"}, false},
		{[]string{"0002_b.sql"}, false},
		{[]string{"0001.sql"}, false},
		{[]string{"0001_a.sql", "x_b.sql"}, false},
	} {
		fsys := fstest.MapFS{}
		for _, f := range c.files {
			fsys["migrations/"+f] = file
		}
		n, err := postgres.LoadMigrations(fsys)
		if (err == nil) != c.ok || c.ok && n != len(c.files) {
			t.Errorf("%v: %d migrations, %v; want ok=%v", c.files, n, err, c.ok)
		}
	}
}
