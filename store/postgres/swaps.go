package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// casSQL swaps one DEK's wrapping if it is still wrapped by the expected
// KID, keeping the replaced one as previous. Its row says whether it did,
// and whether the DEK exists, which tells a lost race from a missing DEK.
const casSQL = `WITH u AS (
		UPDATE dek_wrappings SET
			prev_kid = kid, prev_version = version, prev_alg = alg, prev_wrapped = wrapped,
			kid = $3, version = $4, alg = $5, wrapped = $6
		WHERE dek_id = $1 AND kid = $2
		RETURNING 1
	)
	SELECT EXISTS (SELECT FROM u), EXISTS (SELECT FROM deks WHERE id = $1)`

// maxSwapBatch bounds the swaps committed together, and so the rows one
// transaction holds locked.
const maxSwapBatch = 256

// maxSwapCommitters bounds the swap batches in flight at once (and the
// pool's size bounds it further). BenchmarkSwap, 32 goroutines swapping
// as a rewrap does, pool of 4: one batch at a time did 0.48x the time of
// a commit per swap, two 0.35-0.42x, four 0.29-0.36x; with 8 goroutines,
// only four beat a commit per swap (0.69-0.87x).
const maxSwapCommitters = 4

// swaps group-commits compare-and-swaps of DEK wrappings. A bulk rewrap
// swaps one DEK per call from many goroutines; alone, each swap is a round
// trip and a commit (a WAL flush) of its own. A caller that finds fewer
// than committers batches running sends what is queued as one pgx batch —
// one round trip, one implicit transaction, one commit — and goes on while
// more queued meanwhile; the others wait for their answer. Each swap is
// its own statement, conditional on its own expected KID, with its own
// answer, and sees the swaps before it in the batch.
type swaps struct {
	mu      sync.Mutex
	queue   []*swap
	running int
	// committers bounds the batches in flight at once.
	committers int
	// single turns grouping off, to measure what it buys.
	single bool
}

type swap struct {
	id   string
	args []any
	done chan error
}

func newSwap(id string, expect cmkd.KeyID, w cmkd.Wrapped) *swap {
	return &swap{
		id:   id,
		args: []any{id, expect.String(), w.KID.String(), w.KID.Version, w.Alg, w.Value},
		done: make(chan error, 1),
	}
}

// CompareAndSwapWrapping implements store.Backend.
func (b *Backend) CompareAndSwapWrapping(ctx context.Context, id string, expect cmkd.KeyID, w cmkd.Wrapped) error {
	s := newSwap(id, expect, w)
	g := &b.swaps
	if g.single {
		return b.swapOne(ctx, s)
	}
	g.mu.Lock()
	g.queue = append(g.queue, s)
	if g.running >= max(1, g.committers) {
		g.mu.Unlock()
		return <-s.done // a running committer answers every queued swap
	}
	g.running++
	for len(g.queue) > 0 {
		n := min(len(g.queue), maxSwapBatch)
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		b.commitSwaps(ctx, batch)
		g.mu.Lock()
	}
	g.running--
	g.mu.Unlock()
	return <-s.done
}

// commitSwaps runs batch in one implicit transaction and answers each
// swap. The swaps go in DEK id order (swaps of one DEK in the order they
// came), so two processes' batches lock rows in the same order and queue
// behind each other instead of deadlocking. It does not stop at the
// caller's cancellation: other callers wait on its answers.
func (b *Backend) commitSwaps(ctx context.Context, batch []*swap) {
	ctx = context.WithoutCancel(ctx)
	if len(batch) == 1 { // a statement of its own costs less than a batch of one
		batch[0].done <- b.swapOne(ctx, batch[0])
		return
	}
	slices.SortStableFunc(batch, func(x, y *swap) int { return cmp.Compare(x.id, y.id) })
	pb := &pgx.Batch{}
	for _, s := range batch {
		pb.Queue(casSQL, s.args...)
	}
	results := make([]error, len(batch))
	br := b.pool.SendBatch(ctx, pb)
	for i := range batch {
		var swapped, exists bool
		if err := br.QueryRow().Scan(&swapped, &exists); err != nil {
			results[i] = fmt.Errorf("swap wrapping: %w", err)
			continue
		}
		results[i] = casResult(swapped, exists)
	}
	// Close reports a failed commit: then no swap happened.
	if err := br.Close(); err != nil {
		for i := range results {
			results[i] = fmt.Errorf("swap wrapping: %w", err)
		}
	}
	for i, s := range batch {
		s.done <- results[i]
	}
}

func (b *Backend) swapOne(ctx context.Context, s *swap) error {
	var swapped, exists bool
	if err := b.pool.QueryRow(ctx, casSQL, s.args...).Scan(&swapped, &exists); err != nil {
		return fmt.Errorf("swap wrapping: %w", err)
	}
	return casResult(swapped, exists)
}

func casResult(swapped, exists bool) error {
	switch {
	case swapped:
		return nil
	case !exists:
		return fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return store.ErrCASConflict
}
