package sqlite_test

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

const (
	benchRecords = 1000
	benchSize    = 1024
)

// benchEnv holds the same 1 KiB records twice: through the encrypted store
// (DEK cache warm) and in a plain SQLite table in a file of its own opened
// with the same pragmas, so the ratio is the price of encryption.
type benchEnv struct {
	b     *testing.B
	h     *storetest.Harness
	s     *store.Store
	plain *sql.DB
	// plainGetStmt is prepared, as the backend's GetRecord is.
	plainGetStmt *sql.Stmt
	value        []byte
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	h := storetest.NewHarness(b)
	be, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(dir, "cmkd.db")})
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{b: b, h: h, s: h.NewStore(b, be, nil), value: make([]byte, benchSize)}
	rand.Read(e.value)
	e.plain = openPlain(b, filepath.Join(dir, "plain.db"))
	if e.plainGetStmt, err = e.plain.PrepareContext(b.Context(), `SELECT value FROM records WHERE tenant = ? AND key = ?`); err != nil {
		b.Fatal(err)
	}
	if _, err := e.s.AddTenant(b.Context(), "a", h.Key); err != nil {
		b.Fatal(err)
	}
	for i := range benchRecords {
		e.encPut(i)
		e.plainPut(i)
	}
	return e
}

// openPlain opens a plain table with the backend's DSN pragmas: WAL,
// synchronous NORMAL, a busy timeout, IMMEDIATE transactions.
func openPlain(b *testing.B, path string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"+
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE records (tenant TEXT, key TEXT, value BLOB, PRIMARY KEY (tenant, key))`); err != nil {
		b.Fatal(err)
	}
	return db
}

func benchKey(i int) string { return fmt.Sprintf("record-%04d", i%benchRecords) }

func (e *benchEnv) encGet(i int) {
	if v, err := e.s.Get(e.b.Context(), "a", benchKey(i)); err != nil || len(v) != benchSize {
		e.b.Fatalf("get: %d bytes, %v", len(v), err)
	}
}

func (e *benchEnv) encPut(i int) {
	if err := e.s.Put(e.b.Context(), "a", benchKey(i), e.value); err != nil {
		e.b.Fatal(err)
	}
}

func (e *benchEnv) plainGet(i int) {
	var v []byte
	err := e.plainGetStmt.QueryRowContext(e.b.Context(), "a", benchKey(i)).Scan(&v)
	if err != nil || len(v) != benchSize {
		e.b.Fatalf("plain get: %d bytes, %v", len(v), err)
	}
}

func (e *benchEnv) plainPut(i int) {
	_, err := e.plain.ExecContext(e.b.Context(), `INSERT INTO records (tenant, key, value) VALUES (?, ?, ?)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`, "a", benchKey(i), e.value)
	if err != nil {
		e.b.Fatal(err)
	}
}

// versusChunk is how many operations of one side run back to back before
// the other side's turn.
const versusChunk = 64

// versus benchmarks op against base, interleaving chunks of the two so that
// both see the same machine load (the machine is shared and noisy), and
// reports op's total time as a multiple of base's under unit.
// ns/op covers op and base together; op-ns/op is op alone.
func versus(b *testing.B, base, op func(int), unit string) {
	var tBase, tOp time.Duration
	for i := 0; i < b.N; i += versusChunk {
		n := min(versusChunk, b.N-i)
		tBase += timed(i, n, base)
		tOp += timed(i, n, op)
	}
	b.StopTimer()
	b.ReportMetric(float64(tOp)/float64(tBase), unit)
	b.ReportMetric(float64(tOp.Nanoseconds())/float64(b.N), "op-ns/op")
}

// timed runs op for i in [from, from+n) and returns the time taken.
func timed(from, n int, op func(int)) time.Duration {
	start := time.Now()
	for i := from; i < from+n; i++ {
		op(i)
	}
	return time.Since(start)
}
func BenchmarkGet(b *testing.B) {
	e := newBenchEnv(b)
	b.Run("plain", func(b *testing.B) {
		for i := range b.N {
			e.plainGet(i)
		}
	})
	b.Run("encrypted", func(b *testing.B) { versus(b, e.plainGet, e.encGet, "x-plain") })
}

func BenchmarkPut(b *testing.B) {
	e := newBenchEnv(b)
	b.Run("plain", func(b *testing.B) {
		for i := range b.N {
			e.plainPut(i)
		}
	})
	b.Run("encrypted", func(b *testing.B) { versus(b, e.plainPut, e.encPut, "x-plain") })
}

// BenchmarkGetCold reads with the tenant's DEKs dropped before each read,
// so every read unwraps once in Key Vault (the emulator, over HTTPS on
// loopback); the metric is its cost in warm reads.
func BenchmarkGetCold(b *testing.B) {
	e := newBenchEnv(b)
	cold := func(i int) {
		e.s.Forget("a")
		e.encGet(i)
	}
	versus(b, e.encGet, cold, "x-warm")
}
