package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/cmkd-io/cmkd"
)

// swaps group-commits compare-and-swaps of DEK wrappings. A bulk rewrap swaps
// one DEK per call from many goroutines, and a commit per swap spent most of
// the store's CPU in WAL write syscalls. The first caller to find no batch
// running commits what is queued, in one transaction, and goes on while
// more queued meanwhile; the others wait for their result. Each swap stays
// conditional on its own expected KID, and each gets its own answer.
type swaps struct {
	mu      sync.Mutex
	queue   []*swap
	running bool
}

type swap struct {
	id, expectKID string
	w             cmkd.Wrapped
	done          chan error
}

// CompareAndSwapWrapping implements store.Backend.
func (b *Backend) CompareAndSwapWrapping(ctx context.Context, id string, expect cmkd.KeyID, w cmkd.Wrapped) error {
	s := &swap{id: id, expectKID: expect.String(), w: w, done: make(chan error, 1)}
	g := &b.swaps
	g.mu.Lock()
	g.queue = append(g.queue, s)
	if g.running {
		g.mu.Unlock()
		return <-s.done // the running committer answers every queued swap
	}
	g.running = true
	for len(g.queue) > 0 {
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		b.commitSwaps(ctx, batch)
		g.mu.Lock()
	}
	g.running = false
	g.mu.Unlock()
	return <-s.done
}

// commitSwaps runs batch in one transaction and answers each swap. It does
// not stop at the caller's cancellation: other callers wait on its answers.
func (b *Backend) commitSwaps(ctx context.Context, batch []*swap) {
	ctx = context.WithoutCancel(ctx)
	results := make([]error, len(batch))
	err := b.tx(ctx, func(tx *sql.Tx) error {
		cas := tx.StmtContext(ctx, b.cas)
		for i, s := range batch {
			res, err := cas.ExecContext(ctx, s.w.KID.String(), s.w.KID.Version, s.w.Alg, s.w.Value, s.id, s.expectKID)
			if err != nil {
				return fmt.Errorf("swap wrapping: %w", err)
			}
			results[i] = b.casResult(ctx, tx, res, s.id)
		}
		return nil
	})
	for i, s := range batch {
		if err != nil {
			results[i] = err
		}
		s.done <- results[i]
	}
}
