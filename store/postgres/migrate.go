package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cmkd-io/cmkd/store"
)

// migrationFiles holds the migrations, NNNN_name.sql: file NNNN takes the
// schema from version NNNN-1 to NNNN. Append only; never edit a released
// one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded files in version order, numbered 1, 2, ...
// without gaps; a file that breaks that fails every test at init.
var migrations = mustLoadMigrations(migrationFiles)

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic(err)
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations") // sorted by name
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want %04d_name.sql", e.Name(), len(ms)+1)
		}
		sql, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(sql)})
	}
	return ms, nil
}

// lockClass is the first half of the advisory lock migrations take
// ("cmkd" in ASCII); the second half is a hash of the schema's name, so
// that deployments in other schemas of one database do not wait for each
// other. A collision only makes two of them take turns.
const lockClass = 0x636d6b64

func lockKey(schema string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(schema)) // a hash.Hash never fails to write
	return int32(h.Sum32())        // #nosec G115 -- a hash's bits, reinterpreted as PostgreSQL's int4 key
}

// Migrate brings cfg.Schema to SchemaVersion, creating the schema if
// needed, and returns; for an operator's `cmkd migrate` step, run with
// rights to change the schema, before replicas that open it with
// Config.NoMigrate. It fails with store.ErrSchemaTooNew if a newer cmkd
// migrated the schema.
func Migrate(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	pc, err := cfg.poolConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := migrate(ctx, conn, cfg.Schema); err != nil {
		return fmt.Errorf("migrate schema %s: %w", cfg.Schema, err)
	}
	return nil
}

// migrate brings schema to SchemaVersion in one transaction, under an
// advisory lock on the schema, so that replicas starting together wait
// for the first and find nothing left to do. A schema already current is
// only read: no lock, no DDL.
func migrate(ctx context.Context, conn *pgx.Conn, schema string) error {
	if v, err := schemaVersion(ctx, conn); err == nil && v == SchemaVersion {
		return nil
	} else if err == nil && v > SchemaVersion {
		return tooNew(v)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// A migration may run longer than a statement may; the caller's
		// context bounds it.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(lockClass), lockKey(schema)); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		// The search path names the schema, which a new database lacks:
		// create it, then the version table in it.
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
		if err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`)
		if err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if v > SchemaVersion {
			return tooNew(v)
		}
		for _, m := range migrations[v:] {
			if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migrate to %d (%s): %w", m.version, m.name, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			if err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// checkSchema fails unless schema is at SchemaVersion; it changes nothing.
func checkSchema(ctx context.Context, conn *pgx.Conn, schema string) error {
	v, err := schemaVersion(ctx, conn)
	switch {
	case err != nil:
		return err
	case v > SchemaVersion:
		return tooNew(v)
	case v < SchemaVersion:
		return fmt.Errorf("%w: schema %s is at version %d, this binary needs %d", store.ErrSchemaBehind, schema, v, SchemaVersion)
	}
	return nil
}

func tooNew(v int) error {
	return fmt.Errorf("%w: schema version %d, this binary knows %d", store.ErrSchemaTooNew, v, SchemaVersion)
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion reads the schema's version: 0 before the first migration
// (no version table yet).
func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}
