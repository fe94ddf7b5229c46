package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmkd-io/cmkd/store"
)

// Defaults for Config.
const (
	// DefaultSchema is the PostgreSQL schema cmkd's tables live in.
	DefaultSchema = "cmkd"
	// DefaultStatementTimeout bounds every statement on the server.
	DefaultStatementTimeout = 30 * time.Second
	// DefaultApplicationName is how cmkd's connections show in
	// pg_stat_activity unless the DSN names them.
	DefaultApplicationName = "cmkd"
)

// Config configures a Backend.
type Config struct {
	// DSN is the connection string, as a URL
	// (postgres://user@host:5432/db?sslmode=verify-full) or as key=value
	// pairs; libpq's environment variables and password file fill in
	// what it leaves out. Required.
	DSN string
	// Schema is the PostgreSQL schema that holds cmkd's tables, created
	// by the first migration; DefaultSchema if empty. Deployments sharing a
	// database each use their own. Lower-case letters, digits and
	// underscores, not starting with a digit or "pg_", at most 63 bytes.
	Schema string
	// MaxConns bounds the pool's connections; zero means pgxpool's default
	// (4, or the number of CPUs if more). Several replicas share the
	// server's max_connections.
	MaxConns int32
	// StatementTimeout bounds each statement on the server, waits for
	// locks included, so that a transaction stuck elsewhere fails ours
	// instead of hanging it; DefaultStatementTimeout if zero. Migrations
	// are bounded by the context instead.
	StatementTimeout time.Duration
	// NoMigrate makes Open fail with store.ErrSchemaBehind when the schema
	// is older than this binary, instead of migrating it: for deployments
	// that run `cmkd migrate` as a step of its own, with rights to change
	// the schema that the replicas do not have.
	NoMigrate bool
}

// schemaName is what Validate accepts as Config.Schema: a name that needs
// no quoting and that PostgreSQL does not reserve.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.DSN == "":
		return errors.New("postgres config: DSN is required")
	case c.Schema != "" && (!schemaName.MatchString(c.Schema) || len(c.Schema) >= 3 && c.Schema[:3] == "pg_"):
		return fmt.Errorf("postgres config: Schema %q is not a lower-case identifier of at most 63 bytes outside pg_", c.Schema)
	case c.MaxConns < 0:
		return fmt.Errorf("postgres config: MaxConns %d is negative", c.MaxConns)
	case c.StatementTimeout < 0:
		return fmt.Errorf("postgres config: StatementTimeout %s is negative", c.StatementTimeout)
	}
	if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		return fmt.Errorf("postgres config: DSN: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
}

// poolConfig reads the DSN and sets what every connection needs: the
// schema first on the search path, and the statement timeout. They are
// startup parameters, so they cost no round trip.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	rp := pc.ConnConfig.RuntimeParams
	rp["search_path"] = pgx.Identifier{c.Schema}.Sanitize()
	rp["statement_timeout"] = strconv.FormatInt(c.StatementTimeout.Milliseconds(), 10)
	if rp["application_name"] == "" {
		rp["application_name"] = DefaultApplicationName
	}
	return pc, nil
}

// Backend is a store.Backend in one PostgreSQL schema. Every statement is
// prepared once per connection and its plan cached (pgx's default
// statement cache), so the hot ones — record reads and writes, swaps —
// are parsed and planned once.
type Backend struct {
	pool  *pgxpool.Pool
	swaps swaps
}

var _ store.Backend = (*Backend)(nil)

// Open connects to the database and brings cfg.Schema to the schema this
// package writes (see Migrate), or with cfg.NoMigrate checks that it is
// there. It fails with store.ErrSchemaTooNew if a newer cmkd migrated the
// schema.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		if cfg.NoMigrate {
			return checkSchema(ctx, c.Conn(), cfg.Schema)
		}
		return migrate(ctx, c.Conn(), cfg.Schema)
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres schema %s: %w", cfg.Schema, err)
	}
	b := &Backend{pool: pool}
	b.swaps.committers = min(maxSwapCommitters, int(pc.MaxConns))
	return b, nil
}

// Close waits for the statements under way and closes the pool.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// nanos is t as stored: Unix nanoseconds, NULL for the zero time.
func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
