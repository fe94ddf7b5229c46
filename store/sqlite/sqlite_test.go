package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

func open(t *testing.T, path string) store.Backend {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

// raw opens the file without the backend, as another tool would.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestWALMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	b := open(t, path)
	defer b.Close()
	var mode string
	if err := raw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal mode %q, want wal", mode)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	b := open(t, path)
	if err := b.AddTenant(t.Context(), store.Tenant{ID: "a", Key: cmkd.MustParseKeyID("https://v/keys/k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db := raw(t, path)
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != sqlite.SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, sqlite.SchemaVersion)
	}

	// Reopening a current file migrates nothing and keeps the data.
	b = open(t, path)
	if _, err := b.GetTenant(t.Context(), "a"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	b.Close()

	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// Backends opening a new file at once, each on its own *sql.DB as separate
// processes would be, all end up on one migrated WAL schema: they wait for
// each other, none fails. More than two openers, released together, make
// the race with another opener's switch to WAL likely in every run.
func TestConcurrentFirstOpen(t *testing.T) {
	const openers = 8
	path := filepath.Join(t.TempDir(), "cmkd.db")
	start := make(chan struct{})
	errs := make(chan error, openers)
	bs := make(chan *sqlite.Backend, openers)
	for range openers {
		go func() {
			<-start
			b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
			errs <- err
			bs <- b
		}()
	}
	close(start)
	for range openers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		b := <-bs
		if b == nil {
			continue
		}
		defer b.Close()
		if _, err := b.ListTenants(t.Context(), cmkd.KeyID{}); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	var v int
	var mode string
	db := raw(t, path)
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != sqlite.SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, sqlite.SchemaVersion)
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q (%v), want wal", mode, err)
	}
}

// holdNewFile takes the write lock of a new, not yet WAL, file through
// another handle, as another process does while it switches the file to
// WAL, and returns the function that releases it. The handle waits for its
// own commit, which needs the lock a waiting opener briefly holds.
func holdNewFile(t *testing.T, path string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// A first open waits, up to the busy timeout, for another process that
// holds the write lock of the new file, instead of failing at once: SQLite
// does not call the busy handler for the switch to WAL.
func TestFirstOpenWaitsForOtherOpener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	release := holdNewFile(t, path)
	type opened struct {
		b   *sqlite.Backend
		err error
	}
	done := make(chan opened, 1)
	go func() {
		b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
		done <- opened{b, err}
	}()
	select {
	case o := <-done:
		if o.b != nil {
			o.b.Close()
		}
		t.Fatalf("open finished (%v) while another handle held the new file's lock", o.err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("open after the lock was released: %v", o.err)
		}
		defer o.b.Close()
		if _, err := o.b.ListTenants(t.Context(), cmkd.KeyID{}); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open still blocked after the lock was released")
	}
}

// Past the busy timeout, a first open fails rather than hanging.
func TestFirstOpenBusyTimeoutExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	release := holdNewFile(t, path)
	defer release()
	start := time.Now()
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, BusyTimeout: 100 * time.Millisecond})
	if err == nil {
		b.Close()
		t.Fatal("open succeeded while another handle held the new file's lock")
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
		t.Fatalf("open failed (%v) after %s, busy timeout 100ms", err, d)
	}
}

// holdWriteLock takes the database's write lock through another handle
// and returns the function that releases it.
func holdWriteLock(t *testing.T, path string) func() {
	t.Helper()
	tx, err := raw(t, path).BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE leases SET holder = holder`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func addTenant(ctx context.Context, b store.Backend, id string) error {
	return b.AddTenant(ctx, store.Tenant{ID: id, Key: cmkd.MustParseKeyID("https://v/keys/k"), State: store.StateActive, CreatedAt: time.Now()})
}

// A write waits for another handle's write lock for up to the busy
// timeout instead of failing at once.
func TestBusyTimeoutWaitsForOtherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	b := open(t, path)
	defer b.Close()
	release := holdWriteLock(t, path)
	done := make(chan error, 1)
	go func() { done <- addTenant(t.Context(), b, "a") }()
	select {
	case err := <-done:
		t.Fatalf("write finished (%v) while another handle held the lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after the lock was released: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write still blocked after the lock was released")
	}
	if _, err := b.GetTenant(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
}

// Past the busy timeout, a write fails rather than hanging.
func TestBusyTimeoutExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release := holdWriteLock(t, path)
	defer release()
	start := time.Now()
	if err := addTenant(t.Context(), b, "a"); err == nil {
		t.Fatal("write succeeded while another handle held the lock")
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
		t.Fatalf("write failed after %s, busy timeout 100ms", d)
	}
	// Readers are not blocked by the writer in WAL mode.
	if _, err := b.ListTenants(t.Context(), cmkd.KeyID{}); err != nil {
		t.Fatalf("read while another handle writes: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   sqlite.Config
		field string
	}{
		{sqlite.Config{}, "Path"},
		{sqlite.Config{Path: "x", BusyTimeout: -1}, "BusyTimeout"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", c.cfg, err, c.field)
		}
	}
}

// store.dsn is a path, whatever characters it holds: "#" and "?" are not
// URI syntax, so the database is the file named, not a prefix of it opened
// with options. The files hold wrapped DEKs and tenants' data: they are
// created readable by their owner only.
func TestPathIsAPathAndFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"x#y.db", "a?mode=ro.db", "pct%41.db", "sp ace.db"} {
		path := filepath.Join(dir, name)
		b := open(t, path)
		if err := b.AddTenant(t.Context(), store.Tenant{ID: "a", Key: cmkd.MustParseKeyID("https://v/keys/k"), State: store.StateActive}); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		b.Close()
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				if f == path || !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: %v", f, err)
				}
				continue // WAL and shm files may be gone after a clean close
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v, want no access for group and others", f, perm)
			}
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), name) {
				t.Errorf("opening %q made %q: the path was read as a URI", name, e.Name())
			}
		}
		for _, e := range entries {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// WAL and shm files live while the store is open: they must be private too.
func TestOpenFilesArePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.db")
	b := open(t, path)
	defer b.Close()
	if err := b.AddTenant(t.Context(), store.Tenant{ID: "a", Key: cmkd.MustParseKeyID("https://v/keys/k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want 0600", f, perm)
		}
	}
}
