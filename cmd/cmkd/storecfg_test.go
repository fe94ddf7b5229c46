package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// TestStoreConfigErrorsNameTheField: every wrong store setting is refused
// at load with the field's name, and a DSN's password never shows.
func TestStoreConfigErrorsNameTheField(t *testing.T) {
	const pw = "hunter2-not-shown"
	pg := func(f func(*StoreConfig)) StoreConfig {
		s := StoreConfig{Driver: "postgres", DSN: "postgres://cmkd:" + pw + "@db.example:5432/cmkd"}
		f(&s)
		return s
	}
	no := false
	for _, tc := range []struct {
		name  string
		store StoreConfig
		field string
	}{
		{"negative pool", pg(func(s *StoreConfig) { s.MaxConns = -1 }), "store.max_conns"},
		{"pool past int32", pg(func(s *StoreConfig) { s.MaxConns = 1 << 40 }), "store.max_conns"},
		{"negative timeout", pg(func(s *StoreConfig) { s.StatementTimeout = -time.Second }), "store.statement_timeout"},
		{"schema with capitals", pg(func(s *StoreConfig) { s.Schema = "Cmkd" }), "store.schema"},
		{"schema of the system", pg(func(s *StoreConfig) { s.Schema = "pg_cmkd" }), "store.schema"},
		{"unparseable dsn", pg(func(s *StoreConfig) { s.DSN = "postgres://cmkd:" + pw + "@db.example:notaport/cmkd" }), "store.dsn"},
		{"unparseable key=value dsn", pg(func(s *StoreConfig) { s.DSN = "host=db user=cmkd password=" + pw + " port=notaport" }), "store.dsn"},
		{"search_path in dsn", pg(func(s *StoreConfig) { s.DSN += "?search_path=other" }), "store.dsn"},
		{"sqlite with schema", StoreConfig{Driver: "sqlite", DSN: "x.db", Schema: "cmkd"}, "store.schema"},
		{"sqlite with pool", StoreConfig{Driver: "sqlite", DSN: "x.db", MaxConns: 3}, "store.max_conns"},
		{"sqlite with migrate", StoreConfig{Driver: "sqlite", DSN: "x.db", Migrate: &no}, "store.migrate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Store: tc.store}
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.field)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("the error shows the DSN's password: %v", err)
			}
		})
	}
	ok := pg(func(s *StoreConfig) {
		s.DSN += "?search_path=cmkd_a"
		s.Schema, s.MaxConns, s.StatementTimeout, s.Migrate = "cmkd_a", 8, 5*time.Second, &no
	})
	c := &Config{Store: ok}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid PostgreSQL store refused: %v", err)
	}
}

// TestStoreSettingsFromFileAndEnvironment: the PostgreSQL settings load
// from the file and from CMKD_STORE_* variables, and reach the backend.
func TestStoreSettingsFromFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.yaml")
	yaml := "store: {driver: postgres, dsn: 'postgres://cmkd@db:5432/cmkd', max_conns: 12, statement_timeout: 4s}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMKD_STORE_DSN", "postgres://cmkd@db2:5432/cmkd")
	t.Setenv("CMKD_STORE_SCHEMA", "tenant_keys")
	t.Setenv("CMKD_STORE_MIGRATE", "false")
	t.Setenv("CMKD_WORKER_LEASE_TTL", "10s")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Store.Postgres()
	want := postgres.Config{DSN: "postgres://cmkd@db2:5432/cmkd", Schema: "tenant_keys", MaxConns: 12,
		StatementTimeout: 4 * time.Second, NoMigrate: true}
	if got != want {
		t.Fatalf("backend config %+v, want %+v", got, want)
	}
	if cfg.Worker.LeaseTTL != 10*time.Second {
		t.Fatalf("worker.lease_ttl = %s, want 10s", cfg.Worker.LeaseTTL)
	}
	if (StoreConfig{}).Postgres().NoMigrate {
		t.Fatal("store.migrate unset: want migrations on start")
	}
}

// TestPostgresMigrateOnStartOrRefuse: by default a command migrates a new
// schema as it opens the store; with store.migrate false it refuses, tells
// the operator to run `cmkd migrate`, and works once they have (twice:
// migrate is idempotent). No error shows the DSN's password.
func TestPostgresMigrateOnStartOrRefuse(t *testing.T) {
	s, s2 := pgtest.NewSchema(t), pgtest.NewSchema(t)
	const pw = "not-a-real-password-7"
	withPW := strings.Replace(s.URL, "postgres@", "postgres:"+pw+"@", 1) // trust auth ignores it
	if withPW == s.URL {
		t.Skipf("test server URL %s has no user to add a password to", pgtest.Unreachable(s.URL, nil))
	}
	no := false
	dir := t.TempDir()
	write := func(name string, st StoreConfig) string {
		path := filepath.Join(dir, name)
		cfg := &Config{Instance: "t", Store: st, KeyVault: KVConfig{Credential: "static", Token: "x"}}
		if err := writeConfig(path, cfg); err != nil {
			t.Fatal(err)
		}
		return path
	}
	refuse := write("refuse.yaml", StoreConfig{Driver: "postgres", DSN: withPW, Schema: s.Name, Migrate: &no})

	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"tenant", "list", "--config", refuse}, &out, &errb); code != exitError {
		t.Fatalf("tenant list on an empty schema with store.migrate false: exit %d, want %d\n%s", code, exitError, errb.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "cmkd migrate") || !strings.Contains(msg, "store.migrate") || strings.Contains(msg, pw) {
		t.Fatalf("refusal %q: want it to name store.migrate and `cmkd migrate`, without the password", msg)
	}
	for range 2 {
		out.Reset()
		if code := run(t.Context(), []string{"migrate", "--config", refuse}, &out, io.Discard); code != exitOK {
			t.Fatalf("cmkd migrate: exit %d", code)
		}
		if want := "is at version"; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), s.Name) {
			t.Fatalf("cmkd migrate printed %q, want the schema and its version", out.String())
		}
	}
	if code := run(t.Context(), []string{"tenant", "list", "--config", refuse}, io.Discard, &errb); code != exitOK {
		t.Fatalf("tenant list after cmkd migrate: exit %d\n%s", code, errb.String())
	}

	// The default: a command migrates as it opens.
	auto := write("auto.yaml", StoreConfig{Driver: "postgres", DSN: s2.URL, Schema: s2.Name})
	errb.Reset()
	if code := run(t.Context(), []string{"tenant", "list", "--config", auto}, io.Discard, &errb); code != exitOK {
		t.Fatalf("tenant list on an empty schema, migrating on start: exit %d\n%s", code, errb.String())
	}
	b, err := postgres.Open(t.Context(), postgres.Config{DSN: s2.URL, Schema: s2.Name, NoMigrate: true})
	if err != nil {
		t.Fatalf("the schema a command migrated on start: %v", err)
	}
	b.Close()

	// A server that does not answer: the error names the DSN, redacted.
	down := write("down.yaml", StoreConfig{Driver: "postgres", DSN: "postgres://cmkd:" + pw + "@127.0.0.1:1/cmkd?connect_timeout=2"})
	errb.Reset()
	if code := run(t.Context(), []string{"tenant", "list", "--config", down}, io.Discard, &errb); code != exitError {
		t.Fatalf("tenant list against no server: exit %d", code)
	}
	if msg := errb.String(); strings.Contains(msg, pw) || !strings.Contains(msg, "127.0.0.1:1") {
		t.Fatalf("error %q: want the server named and the password not", msg)
	}
}

// TestMigrateSQLiteAndDevStoreUsage: `cmkd migrate` also serves a SQLite
// store (it migrates on open; the command says the version), and `cmkd dev
// --store` refuses a bad connection string before starting anything,
// without printing its password.
func TestMigrateSQLiteAndDevStoreUsage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cmkd.yaml")
	cfg := &Config{Instance: "t", Store: StoreConfig{Driver: "sqlite", DSN: filepath.Join(dir, "cmkd.db")},
		KeyVault: KVConfig{Credential: "static", Token: "x"}}
	if err := writeConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run(t.Context(), []string{"migrate", "--config", path}, &out, io.Discard); code != exitOK {
		t.Fatalf("cmkd migrate on SQLite: exit %d", code)
	}
	if !strings.Contains(out.String(), "SQLite store") || !strings.Contains(out.String(), "is at version") {
		t.Fatalf("cmkd migrate printed %q", out.String())
	}

	const pw = "dev-pw-not-shown"
	var errb bytes.Buffer
	data := filepath.Join(dir, "dev")
	code := run(t.Context(), []string{"dev", "--data", data, "--store", "postgres://u:" + pw + "@h:notaport/db"}, io.Discard, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "store.dsn") || strings.Contains(errb.String(), pw) {
		t.Fatalf("cmkd dev --store with a bad DSN: exit %d, %q; want exit 2 naming store.dsn without the password", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(data, "cmkd.yaml")); err == nil {
		t.Fatal("cmkd dev wrote a config although its --store was refused")
	}
}
