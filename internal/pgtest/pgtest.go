// Package pgtest gives a test a PostgreSQL schema of its own on a real
// server. Where no server answers, the test is skipped with a message that
// says how to run it; where PostgreSQL is required (CI sets
// CMKD_REQUIRE_POSTGRES=1), it fails instead, so that a skip there cannot
// pass for a success.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/internal/redact"
)

const (
	// EnvURL names the environment variable holding the test server's
	// connection string; DefaultURL when it is unset.
	EnvURL = "CMKD_TEST_POSTGRES"
	// EnvRequire names the environment variable that, set to 1, makes an
	// unreachable server fail the test instead of skipping it.
	EnvRequire = "CMKD_REQUIRE_POSTGRES"
	// DefaultURL is a local server with trust authentication.
	DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// ReachTimeout bounds the wait for the server to answer.
	ReachTimeout = 2 * time.Second
)

// The server is asked once per test binary: when it is down, every test
// would otherwise wait ReachTimeout before skipping.
var reach struct {
	once sync.Once
	url  string
	err  error
}

// Reach reports the test server's connection string and whether it
// answers, asking it once per process.
func Reach() (string, error) {
	reach.once.Do(func() {
		reach.url = os.Getenv(EnvURL)
		if reach.url == "" {
			reach.url = DefaultURL
		}
		reach.err = ping(reach.url)
	})
	return reach.url, reach.err
}

// Unreachable is the message for a server that does not answer: what was
// tried and how to point the tests at a server.
func Unreachable(url string, err error) string {
	return fmt.Sprintf("PostgreSQL at %s not reachable: %v; set %s to a server's connection string to run its tests",
		redact.URL(url), redact.Error(err), EnvURL)
}

// URL returns the test server's connection string once the server has
// answered. Otherwise it skips the test, or fails it when EnvRequire is 1.
func URL(tb testing.TB) string {
	tb.Helper()
	url, err := Reach()
	if err != nil {
		msg := Unreachable(url, err)
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("%s (%s=1: PostgreSQL is required here)", msg, EnvRequire)
		}
		tb.Skip(msg)
	}
	return url
}

func ping(connString string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReachTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// Schema is a schema of a test's own on the test server.
type Schema struct {
	// URL is the server's connection string, as URL returns it.
	URL string
	// Name is the schema's name: a plain lower-case identifier, unique to
	// the test.
	Name string
	// DSN is URL with search_path set to the schema, for code that takes
	// only a connection string.
	DSN string
}

// NewSchema creates an empty schema for the test and drops it, with
// everything in it, when the test ends; it skips or fails the test as URL
// does. Anything the test opens on the schema must be closed by cleanups
// registered after NewSchema, which run before the drop.
func NewSchema(tb testing.TB) Schema {
	tb.Helper()
	s := Schema{URL: URL(tb), Name: schemaName(tb.Name())}
	s.DSN = With(s.URL, "search_path", s.Name)
	if err := Exec(s.URL, `CREATE SCHEMA `+s.Name); err != nil {
		tb.Fatalf("create schema %s: %v", s.Name, err)
	}
	tb.Cleanup(func() {
		if err := Exec(s.URL, `DROP SCHEMA IF EXISTS `+s.Name+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", s.Name, err)
		}
	})
	return s
}

// Exec runs one statement on a connection of its own. It does not use the
// test's context, which has ended by the time cleanups drop schemas; a lock
// timeout makes a drop that something still open blocks fail visibly
// instead of hanging the test binary.
func Exec(connString, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
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

// schemaName makes a schema name from the test's name and a random
// suffix: recognisable in the server while the test runs, unique across
// parallel tests and test binaries, at most 63 bytes (PostgreSQL's limit).
func schemaName(test string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 44 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	return b.String() + "_" + hex.EncodeToString(suffix[:])
}

// With returns connString, in either of its forms, with param set to
// value: a connection setting, or any server setting, which pgx sends at
// startup (search_path, application_name). value must not need quoting.
func With(connString, param, value string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			q := u.Query()
			q.Set(param, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return connString + " " + param + "=" + value
}
