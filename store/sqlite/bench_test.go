package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// newBench holds the records through the encrypted store and in a plain
// table in a file of its own, opened with the same pragmas.
func newBench(b *testing.B) *storetest.RecordBench {
	b.Helper()
	dir := b.TempDir()
	be, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(dir, "cmkd.db")})
	if err != nil {
		b.Fatal(err)
	}
	return storetest.NewRecordBench(b, be, openPlain(b, filepath.Join(dir, "plain.db")))
}

// plain is a plain table with the backend's DSN pragmas: WAL, synchronous
// NORMAL, a busy timeout, IMMEDIATE transactions.
type plain struct {
	db *sql.DB
	// get and put are prepared, as the backend's record statements are.
	get, put *sql.Stmt
}

func openPlain(b *testing.B, path string) *plain {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"+
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE records (tenant TEXT, key TEXT, value BLOB, PRIMARY KEY (tenant, key))`); err != nil {
		b.Fatal(err)
	}
	p := &plain{db: db}
	if p.get, err = db.PrepareContext(b.Context(), `SELECT value FROM records WHERE tenant = ? AND key = ?`); err != nil {
		b.Fatal(err)
	}
	if p.put, err = db.PrepareContext(b.Context(), `INSERT INTO records (tenant, key, value) VALUES (?, ?, ?)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`); err != nil {
		b.Fatal(err)
	}
	return p
}

func (p *plain) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := p.get.QueryRowContext(ctx, "a", key).Scan(&v)
	return v, err
}

func (p *plain) Put(ctx context.Context, key string, value []byte) error {
	_, err := p.put.ExecContext(ctx, "a", key, value)
	return err
}

func BenchmarkGet(b *testing.B)     { newBench(b).Get(b) }
func BenchmarkPut(b *testing.B)     { newBench(b).Put(b) }
func BenchmarkGetCold(b *testing.B) { newBench(b).GetCold(b) }
