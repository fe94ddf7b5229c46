package postgres

import (
	"context"
	"io/fs"

	"github.com/cmkd-io/cmkd"
)

// LockClass and LockKey name the advisory lock migrations take on a
// schema, so a test can hold it.
const LockClass = lockClass

func LockKey(schema string) int32 { return lockKey(schema) }

// SetSwapCommitters sets how many swap batches may be in flight at once.
func SetSwapCommitters(b *Backend, n int) { b.swaps.committers = n }

// SetSingleSwaps turns the grouping of swaps off (or on again), to compare.
func SetSingleSwaps(b *Backend, single bool) { b.swaps.single = single }

// LoadMigrations reads migrations from fsys as the package reads its own.
func LoadMigrations(fsys fs.FS) (int, error) {
	ms, err := loadMigrations(fsys)
	return len(ms), err
}

// Swap is one compare-and-swap for SwapBatch.
type Swap struct {
	ID     string
	Expect cmkd.KeyID
	W      cmkd.Wrapped
}

// SwapBatch commits swaps as one group and returns their answers, in the
// order given.
func SwapBatch(ctx context.Context, b *Backend, swaps []Swap) []error {
	batch := make([]*swap, len(swaps))
	for i, s := range swaps {
		batch[i] = newSwap(s.ID, s.Expect, s.W)
	}
	answers := make([]*swap, len(batch))
	copy(answers, batch)
	b.commitSwaps(ctx, batch)
	errs := make([]error, len(answers))
	for i, s := range answers {
		errs[i] = <-s.done
	}
	return errs
}
