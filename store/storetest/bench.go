package storetest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// Sizes of the record benchmarks: one tenant's BenchRecords records of
// BenchSize bytes, read and written round-robin.
const (
	BenchRecords = 1000
	BenchSize    = 1024
)

// Plain is the baseline of the record benchmarks: the same records in a
// plain table of the same engine, with the same durability settings — no
// encryption, no seal check, no DEK use count — read through a prepared
// statement as the backend reads, written by one upsert.
type Plain interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
}

// RecordBench holds the same records twice, through the encrypted store
// (DEK cache warm) and in a Plain table, so that the ratio of the two is
// the price of encryption in that engine. Every backend's benchmarks run
// it, so their ratios are measured the same way.
type RecordBench struct {
	b     *testing.B
	s     *store.Store
	plain Plain
	// plainSeq is stamped into each plain write's value.
	plainSeq uint64
	value    []byte
}

// NewRecordBench fills be (through a Store) and plain with the records.
func NewRecordBench(b *testing.B, be store.Backend, plain Plain) *RecordBench {
	b.Helper()
	h := NewHarness(b)
	e := &RecordBench{b: b, s: h.NewStore(b, be, nil), plain: plain, value: make([]byte, BenchSize)}
	rand.Read(e.value)
	if _, err := e.s.AddTenant(b.Context(), "a", h.Key); err != nil {
		b.Fatal(err)
	}
	for i := range BenchRecords {
		e.encPut(i)
		e.plainPut(i)
	}
	return e
}

func benchKey(i int) string { return fmt.Sprintf("record-%04d", i%BenchRecords) }

func (e *RecordBench) encGet(i int) {
	if v, err := e.s.Get(e.b.Context(), "a", benchKey(i)); err != nil || len(v) != BenchSize {
		e.b.Fatalf("get: %d bytes, %v", len(v), err)
	}
}

func (e *RecordBench) encPut(i int) {
	if err := e.s.Put(e.b.Context(), "a", benchKey(i), e.value); err != nil {
		e.b.Fatal(err)
	}
}

func (e *RecordBench) plainGet(i int) {
	if v, err := e.plain.Get(e.b.Context(), benchKey(i)); err != nil || len(v) != BenchSize {
		e.b.Fatalf("plain get: %d bytes, %v", len(v), err)
	}
}

// plainPut writes a value that differs from the one stored: an engine may
// skip writing a page whose bytes an update leaves unchanged (SQLite
// does), and the encrypted side always writes fresh ciphertext.
func (e *RecordBench) plainPut(i int) {
	e.plainSeq++
	binary.BigEndian.PutUint64(e.value, e.plainSeq)
	if err := e.plain.Put(e.b.Context(), benchKey(i), e.value); err != nil {
		e.b.Fatal(err)
	}
}

// Get benchmarks warm encrypted reads against plain ones: sub-benchmarks
// plain, and encrypted with its ratio as x-plain.
func (e *RecordBench) Get(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for i := range b.N {
			e.plainGet(i)
		}
	})
	b.Run("encrypted", func(b *testing.B) { Versus(b, e.plainGet, e.encGet, "x-plain") })
}

// Put benchmarks encrypted writes against plain upserts, as Get does.
func (e *RecordBench) Put(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for i := range b.N {
			e.plainPut(i)
		}
	})
	b.Run("encrypted", func(b *testing.B) { Versus(b, e.plainPut, e.encPut, "x-plain") })
}

// GetCold reads with the tenant's DEKs dropped before each read, so every
// read unwraps once in Key Vault (the emulator, over HTTPS on loopback);
// the metric is its cost in warm reads, x-warm.
func (e *RecordBench) GetCold(b *testing.B) {
	// The records were written in this run of the benchmark function:
	// counted, their time made b.N one or two on a slow engine.
	b.ResetTimer()
	cold := func(i int) {
		e.s.Forget("a")
		e.encGet(i)
	}
	Versus(b, e.encGet, cold, "x-warm")
}

// versusChunk is how many operations of one side run back to back before
// the other side's turn.
const versusChunk = 64

// Versus benchmarks op against base, interleaving chunks of the two so that
// both see the same machine load (the machine is shared and noisy), and
// reports op's total time as a multiple of base's under unit.
// ns/op covers op and base together; op-ns/op is op alone.
func Versus(b *testing.B, base, op func(int), unit string) {
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
