package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// Swaps from many goroutines of two processes are committed in groups,
// yet each answers for itself: every DEK swapped once moves, of many
// racing swaps of one DEK exactly one wins and the rest lose with
// ErrCASConflict, and a swap of a DEK that does not exist says
// ErrNotFound. Both ways of committing are held to it.
func TestConcurrentSwapsEachAnswerForThemselves(t *testing.T) {
	t.Parallel()
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			t.Parallel()
			s := pgtest.NewSchema(t)
			b1, b2 := open(t, s), open(t, s)
			postgres.SetSingleSwaps(b1, single)
			postgres.SetSingleSwaps(b2, single)
			ctx := t.Context()
			addTenant(t, b1, "t")
			const n = 64
			for i := range n + 1 {
				addDEK(t, b1, "t", fmt.Sprintf("d%02d", i))
			}
			v1 := wrapped("v1").KID
			var wg sync.WaitGroup
			errs := make([]error, 2*n+1)
			for i := range n { // d00…d63 once each; d64 n times, from both processes
				b := []*postgres.Backend{b1, b2}[i%2]
				wg.Go(func() { errs[i] = b.CompareAndSwapWrapping(ctx, fmt.Sprintf("d%02d", i), v1, wrapped("v2")) })
				wg.Go(func() { errs[n+i] = b.CompareAndSwapWrapping(ctx, "d64", v1, wrapped("v2")) })
			}
			wg.Go(func() { errs[2*n] = b1.CompareAndSwapWrapping(ctx, "nope", v1, wrapped("v2")) })
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("swap of d%02d: %v", i, errs[i])
				}
			}
			won := 0
			for _, err := range errs[n : 2*n] {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, store.ErrCASConflict):
					t.Fatalf("racing swap of d64: %v, want nil or ErrCASConflict", err)
				}
			}
			if won != 1 {
				t.Fatalf("%d racing swaps of d64 won, want exactly 1", won)
			}
			if !errors.Is(errs[2*n], store.ErrNotFound) {
				t.Fatalf("swap of a missing dek: %v, want ErrNotFound", errs[2*n])
			}
			counts, err := b2.VersionCounts(ctx, testKey)
			if err != nil || counts["v2"] != n+1 || counts["v1"] != 1 { // and the tenant's first DEK
				t.Fatalf("versions after the swaps: %v, %v", counts, err)
			}
			for i := range n + 1 {
				ds, err := b2.GetDEK(ctx, "t", fmt.Sprintf("d%02d", i))
				if err != nil || len(ds) != 1 {
					t.Fatalf("dek d%02d after the swaps: %+v, %v", i, ds, err)
				}
				if d := ds[0]; d.Current.KID != wrapped("v2").KID || d.Previous == nil || d.Previous.KID != v1 {
					t.Fatalf("dek d%02d after the swaps: %+v", i, d)
				}
			}
		})
	}
}

// Swaps committed in one batch are applied in DEK id order, but those of
// one DEK in the order they came, each seeing the one before.
func TestSwapBatchOrder(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	b := open(t, s)
	addTenant(t, b, "t")
	addDEK(t, b, "t", "d1")
	addDEK(t, b, "t", "d2")
	errs := postgres.SwapBatch(t.Context(), b, []postgres.Swap{
		{ID: "d2", Expect: wrapped("v1").KID, W: wrapped("v2")},
		{ID: "d1", Expect: wrapped("v1").KID, W: wrapped("v2")},
		{ID: "d2", Expect: wrapped("v2").KID, W: wrapped("v3")},
		{ID: "d2", Expect: wrapped("v1").KID, W: wrapped("v9")},
		{ID: "d0", Expect: wrapped("v1").KID, W: wrapped("v2")},
	})
	for i, want := range []error{nil, nil, nil, store.ErrCASConflict, store.ErrNotFound} {
		if !errors.Is(errs[i], want) {
			t.Errorf("swap %d: %v, want %v", i, errs[i], want)
		}
	}
	for id, v := range map[string]string{"d1": "v2", "d2": "v3"} {
		if d, err := b.GetDEK(t.Context(), "t", id); err != nil || len(d) != 1 || d[0].Version() != v {
			t.Errorf("%s at %+v (%v), want %s", id, d, err, v)
		}
	}
}

// BenchmarkSwap swaps DEK wrappings from as many goroutines as a rewrap
// runs at once (32, handlers.DefaultRewrapConcurrency) or fewer, each
// swap on its own ("single": a statement and a commit each) or grouped
// with up to 1, 2 or 4 batches in flight. The modes run interleaved, in
// chunks, each on a schema of its own, so that the load of a shared
// machine falls on all alike; each reports swaps per second, and the
// grouped ones their time as a multiple of single's (x-single).
func BenchmarkSwap(b *testing.B) {
	const deks, chunk = 4096, 256
	type mode struct {
		name       string
		committers int // 0: single
		be         *postgres.Backend
		took       time.Duration
	}
	for _, workers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			modes := []*mode{{name: "single"}, {name: "grouped1", committers: 1}, {name: "grouped2", committers: 2}, {name: "grouped4", committers: 4}}
			for _, m := range modes {
				s := pgtest.NewSchema(b)
				m.be = open(b, s)
				postgres.SetSingleSwaps(m.be, m.committers == 0)
				postgres.SetSwapCommitters(m.be, m.committers)
				addTenant(b, m.be, "t")
				seedDEKs(b, s, "t", deks)
			}
			b.ResetTimer()
			for from := 0; from < b.N; from += chunk {
				n := min(chunk, b.N-from)
				for _, m := range modes {
					m.took += swapRange(b, m.be, from, n, workers, deks)
				}
			}
			b.StopTimer()
			for _, m := range modes {
				b.ReportMetric(float64(b.N)/m.took.Seconds(), m.name+"-swaps/s")
				if m.committers > 0 {
					b.ReportMetric(float64(m.took)/float64(modes[0].took), m.name+"-x-single")
				}
			}
		})
	}
}

// swapRange swaps DEKs from to from+n (modulo deks, one version further
// each round) from workers goroutines, and returns the time it took.
func swapRange(b *testing.B, be *postgres.Backend, from, n, workers, deks int) time.Duration {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= from+n {
					return
				}
				round := i / deks
				err := be.CompareAndSwapWrapping(b.Context(), fmt.Sprintf("d%04d", i%deks),
					wrapped(fmt.Sprint("v", round)).KID, wrapped(fmt.Sprint("v", round+1)))
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// seedDEKs inserts n DEKs d0000… of tenant at version v0 in one statement.
func seedDEKs(b *testing.B, s pgtest.Schema, tenant string, n int) {
	b.Helper()
	w := wrapped("v0")
	_, err := raw(b, s).Exec(b.Context(), `INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, kcv, created_at)
		SELECT format('d%s', lpad(i::text, 4, '0')), $1, $2, $3, $4, $5, $6, '\x00', 0 FROM generate_series(0, $7 - 1) i`,
		tenant, testKey.URL(), w.KID.String(), w.KID.Version, w.Alg, w.Value, n)
	if err != nil {
		b.Fatal(err)
	}
}
