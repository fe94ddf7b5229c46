package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/cmkd-io/cmkd/store"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultBusyTimeout is how long a write waits for another writer, in this
// or another process, before it fails.
const DefaultBusyTimeout = 5 * time.Second

// Config configures a Backend.
type Config struct {
	// Path is the database file; it is created if missing.
	Path string
	// BusyTimeout bounds the wait for the write lock; DefaultBusyTimeout if zero.
	BusyTimeout time.Duration
	// MaxConns bounds the open connections, all kept open; zero means
	// twice GOMAXPROCS (at least 4). SQLite work is CPU in this process, so
	// more connections than CPUs buy nothing, and database/sql's default
	// (unbounded, two kept idle) opened and closed a connection — file,
	// schema, page cache — on most reads under concurrency.
	MaxConns int
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite config: Path is required")
	case c.BusyTimeout < 0:
		return fmt.Errorf("sqlite config: BusyTimeout %s is negative", c.BusyTimeout)
	case c.MaxConns < 0:
		return fmt.Errorf("sqlite config: MaxConns %d is negative", c.MaxConns)
	}
	return nil
}

// Backend is a store.Backend in one SQLite file.
type Backend struct {
	db *sql.DB
	// getRecord is prepared once: parsing the seal-checking join on every
	// read cost more than the decryption.
	getRecord *sql.Stmt
	// cas is prepared for the same reason: a bulk rewrap runs it per DEK.
	cas *sql.Stmt
	// putRecord is prepared too: parsing it cost a quarter of a Put.
	putRecord *sql.Stmt
	swaps     swaps
}

var _ store.Backend = (*Backend)(nil)

// Open opens (creating if needed) and migrates the database at cfg.Path. It
// fails with store.ErrSchemaTooNew if a newer cmkd wrote the file.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if err := createPrivate(cfg.Path); err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	db, err := sql.Open("sqlite", dsn(cfg))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	b := &Backend{db: db}
	if err := b.enableWAL(ctx, cfg.BusyTimeout); err != nil {
		return nil, errors.Join(fmt.Errorf("open %s: journal mode: %w", cfg.Path, err), db.Close())
	}
	if err := b.migrate(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open %s: %w", cfg.Path, err), db.Close())
	}
	if err := b.prepare(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open %s: prepare: %w", cfg.Path, err), db.Close())
	}
	return b, nil
}

// dsn asks for a busy timeout (other processes' writes are waited for, not
// failed), foreign keys, and BEGIN IMMEDIATE for every transaction (a
// transaction that will write takes the lock up front instead of failing to
// upgrade it later). WAL is not asked for here: see enableWAL.
func dsn(cfg Config) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	// Path is a file path, not a URI: escape what a URI would read as
	// syntax ("#" a fragment, "?" options, "%" an escape).
	return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
}

// createPrivate creates the database file, empty, readable and writable by
// its owner only, unless it exists. SQLite gives the -wal and -shm files
// the database file's permissions, so they are private too. An existing
// file keeps the mode its owner gave it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator's store.dsn, a path by design
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// enableWAL switches the file to WAL (readers never block the writer),
// retrying while another connection holds its lock, for up to timeout.
//
// The busy timeout does not cover this switch. On a file not yet in WAL,
// PRAGMA journal_mode = WAL reads the header under a SHARED lock and then
// upgrades to a write lock to rewrite it, and SQLite never calls the busy
// handler for an upgrade from a read transaction (sqlite3BtreeBeginTrans
// retries only from no transaction, as waiting there could deadlock): if
// another connection holds the write lock, such as another process
// switching the same new file, the pragma fails at once with SQLITE_BUSY.
// Run as a DSN _pragma, it failed the connection, and so the Open, of one
// of two processes opening a new store at once. The failed statement has
// released its lock, so trying again lets the other switch finish; after
// it the file is in WAL for good and the pragma only reads the header.
//
// WAL is a property of the file, so once it is set every connection of
// every process uses it; the connections of the pool need not ask.
func (b *Backend) enableWAL(ctx context.Context, timeout time.Duration) error {
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		_, err := conn.ExecContext(ctx, `PRAGMA journal_mode = WAL`)
		if !isBusy(err) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		// Jittered, so that openers that failed together do not retry
		// together; capped, so that a switch that finished is seen soon.
		wait := min(backoff/2+rand.N(backoff/2+1), left) // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// isBusy reports whether err is SQLITE_BUSY or one of its extended codes.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

func (b *Backend) prepare(ctx context.Context) (err error) {
	if b.getRecord, err = b.db.PrepareContext(ctx, getRecordSQL); err != nil {
		return err
	}
	if b.cas, err = b.db.PrepareContext(ctx, casSQL); err != nil {
		return err
	}
	b.putRecord, err = b.db.PrepareContext(ctx, putRecordSQL)
	return err
}

// Close closes the database.
func (b *Backend) Close() error {
	var errs []error
	for _, s := range []*sql.Stmt{b.getRecord, b.cas, b.putRecord} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(append(errs, b.db.Close())...)
}

// tx runs fn in one IMMEDIATE transaction.
func (b *Backend) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// fn's error says what went wrong; a failed rollback leaves
		// nothing behind either, as SQLite drops the transaction with
		// the connection.
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Times are stored as Unix nanoseconds, zero for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
