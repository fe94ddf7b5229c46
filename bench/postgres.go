package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/internal/pgtest"
)

// ErrNoPostgres is a PostgreSQL server that does not answer: a scenario
// reports its PostgreSQL part as skipped, with the message, instead of
// failing the run.
var ErrNoPostgres = errors.New("no PostgreSQL")

// unreachable is ErrNoPostgres with pgtest's message: what was tried and
// how to point the harness at a server.
type unreachable string

func (u unreachable) Error() string        { return string(u) }
func (u unreachable) Is(target error) bool { return target == ErrNoPostgres }

// PostgresRequired reports whether PostgreSQL must answer
// (CMKD_REQUIRE_POSTGRES=1, as CI sets it): a scenario's smoke test fails
// there when it skipped its PostgreSQL part.
func PostgresRequired() bool { return os.Getenv(pgtest.EnvRequire) == "1" }

// PGSchema is a schema of a scenario's own on the PostgreSQL server the
// tests use (CMKD_TEST_POSTGRES, or a local server with trust
// authentication).
type PGSchema struct {
	// URL is the server's connection string.
	URL string
	// Name is the schema's name, unique to the run.
	Name string
	// DSN is URL with search_path set to the schema.
	DSN string
}

// NewPGSchema creates an empty schema named after prefix. It fails with
// ErrNoPostgres, saying what was tried, when the server does not answer.
func NewPGSchema(ctx context.Context, prefix string) (*PGSchema, error) {
	url, err := pgtest.Reach()
	if err != nil {
		return nil, unreachable(pgtest.Unreachable(url, err))
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	s := &PGSchema{URL: url, Name: "bench_" + prefix + "_" + hex.EncodeToString(suffix[:])}
	s.DSN = pgtest.With(url, "search_path", s.Name)
	if err := pgExec(ctx, url, `CREATE SCHEMA `+s.Name); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", s.Name, err)
	}
	return s, nil
}

// Drop removes the schema and everything in it. It runs on a context of
// its own: the scenario's may have ended.
func (s *PGSchema) Drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pgExec(ctx, s.URL, `DROP SCHEMA IF EXISTS `+s.Name+` CASCADE`)
}

func pgExec(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SET lock_timeout = '10s'`); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return err
}

// PGWith returns connString with the connection or server setting param
// set to value (which must not need quoting).
func PGWith(connString, param, value string) string { return pgtest.With(connString, param, value) }
