package config

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cmkd-io/cmkd/internal/redact"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// Validate checks the store fields beyond the driver and the DSN's
// presence (Config.Validate checks those too), naming each wrong field.
// Errors quote the DSN only redacted.
func (s StoreConfig) Validate() error { return errors.Join(s.validate()...) }

// validate checks the store fields beyond the driver and the DSN's
// presence, naming the field. Errors quote the DSN only redacted.
func (s StoreConfig) validate() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if s.Driver != "postgres" {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"store.schema", s.Schema != ""}, {"store.max_conns", s.MaxConns != 0},
			{"store.statement_timeout", s.StatementTimeout != 0}, {"store.migrate", s.Migrate != nil},
		} {
			if f.set {
				bad(f.name, "applies to driver postgres only (store.driver is %q)", s.Driver)
			}
		}
		return errs
	}
	if s.MaxConns < 0 || s.MaxConns > math.MaxInt32 {
		bad("store.max_conns", "%d is not between 1 and %d (0: the default)", s.MaxConns, math.MaxInt32)
	}
	if s.StatementTimeout < 0 {
		bad("store.statement_timeout", "%s is negative (0: the default, %s)", s.StatementTimeout, postgres.DefaultStatementTimeout)
	}
	if s.DSN == "" {
		return errs // reported with the driver-independent fields
	}
	pc := postgres.Config{DSN: s.DSN}
	if err := pc.Validate(); err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		bad("store.dsn", "not a PostgreSQL connection string: %v", redact.Error(err))
		return errs
	}
	pc.Schema = s.Schema
	if err := pc.Validate(); err != nil {
		bad("store.schema", "%q is not a lower-case identifier of at most 63 bytes, outside pg_", s.Schema)
	}
	// cmkd sets search_path to its schema on every connection: a different
	// one in the DSN would be ignored without a word.
	if c, err := pgconn.ParseConfig(s.DSN); err == nil {
		if sp, ok := c.RuntimeParams["search_path"]; ok && sp != s.SchemaName() {
			bad("store.dsn", "sets search_path %q, but cmkd keeps its tables in store.schema (%q): set store.schema instead", sp, s.SchemaName())
		}
	}
	return errs
}

// SchemaName is store.schema or its default (PostgreSQL).
func (s StoreConfig) SchemaName() string {
	if s.Schema == "" {
		return postgres.DefaultSchema
	}
	return s.Schema
}

// Postgres is the PostgreSQL backend's config for these fields.
func (s StoreConfig) Postgres() postgres.Config {
	return postgres.Config{
		DSN: s.DSN, Schema: s.Schema, MaxConns: int32(s.MaxConns), // #nosec G115 -- validate bounds it to int32
		StatementTimeout: s.StatementTimeout, NoMigrate: !s.MigratesOnOpen(),
	}
}

// OpenBackend opens the configured database, migrating its schema unless
// store.migrate is false. Errors never show the DSN's password.
func OpenBackend(ctx context.Context, s StoreConfig) (store.Backend, error) {
	switch s.Driver {
	case "sqlite":
		b, err := sqlite.Open(ctx, sqlite.Config{Path: s.DSN})
		if err != nil {
			return nil, StoreError(s, err)
		}
		return b, nil
	case "postgres":
		b, err := postgres.Open(ctx, s.Postgres())
		if err != nil {
			return nil, StoreError(s, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("store.driver %q is not sqlite or postgres", s.Driver)
}

// StoreError says which store failed, without its password, and what the
// operator can do about the schema errors.
func StoreError(s StoreConfig, err error) error {
	err = fmt.Errorf("open store %s: %w", redact.URL(s.DSN), redact.Error(err))
	switch {
	case errors.Is(err, store.ErrSchemaBehind):
		return fmt.Errorf("%w (store.migrate is false: run `cmkd migrate` with this config, then start cmkd again)", err)
	case errors.Is(err, store.ErrSchemaTooNew):
		return fmt.Errorf("%w (a newer cmkd migrated it: run that version or a later one)", err)
	}
	return err
}
