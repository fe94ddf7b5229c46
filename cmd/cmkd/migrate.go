package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// runMigrate brings the store's schema to this binary's version and says
// which version that is: the step operators run before starting replicas
// configured with store.migrate: false. Running it again changes nothing.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "migrate [--config FILE]", stderr)
	cfgFlag := fs.String("config", "", "config file (default $CMKD_CONFIG, else cmkd-data/cmkd.yaml)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("migrate takes no arguments, got %q", fs.Args())
	}
	cfg, err := loadConfig(configPath(*cfgFlag))
	if err != nil {
		return err
	}
	s := cfg.Store
	switch s.Driver {
	case "postgres":
		if err := postgres.Migrate(ctx, s.Postgres()); err != nil {
			return storeError(s, err)
		}
		_, err = fmt.Fprintf(stdout, "PostgreSQL schema %s is at version %d\n", s.SchemaName(), postgres.SchemaVersion)
		return err
	case "sqlite":
		b, err := sqlite.Open(ctx, sqlite.Config{Path: s.DSN}) // migrates
		if err != nil {
			return storeError(s, err)
		}
		if err := b.Close(); err != nil {
			return storeError(s, err)
		}
		_, err = fmt.Fprintf(stdout, "SQLite store %s is at version %d\n", s.DSN, sqlite.SchemaVersion)
		return err
	}
	return errors.New("store.driver: not sqlite or postgres")
}
