package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

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
func NewPGSchema(prefix string) (*PGSchema, error) {
	url, err := pgtest.Reach()
	if err != nil {
		return nil, unreachable(pgtest.Unreachable(url, err))
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	s := &PGSchema{URL: url, Name: "bench_" + prefix + "_" + hex.EncodeToString(suffix[:])}
	s.DSN = pgtest.With(url, "search_path", s.Name)
	if err := pgtest.Exec(url, `CREATE SCHEMA `+s.Name); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", s.Name, err)
	}
	return s, nil
}

// Drop removes the schema and everything in it.
func (s *PGSchema) Drop() error {
	return pgtest.Exec(s.URL, `DROP SCHEMA IF EXISTS `+s.Name+` CASCADE`)
}
