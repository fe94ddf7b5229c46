package seal

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// load is a set of readers calling Store.Get on random tenants and records.
// For each tenant it keeps only the completion time of its last successful
// read, which is all the seal latency needs: with every tenant read every
// few milliseconds, that time is when reads of the tenant stopped working.
type load struct {
	store   *store.Store
	tenants []string
	keys    []string
	origin  time.Time
	last    []atomic.Int64 // per tenant: last successful read, ns since origin; 0 none

	mu       sync.Mutex
	sealed   int64 // reads refused: ErrSealed or the key disabled
	failed   int64 // reads that failed otherwise
	firstErr error
}

func newLoad(st *store.Store, tenants, keys []string, origin time.Time) *load {
	return &load{store: st, tenants: tenants, keys: keys, origin: origin, last: make([]atomic.Int64, len(tenants))}
}

// counter is one reader's count of successful reads, padded to its own
// cache line so that 100 readers do not contend on one counter.
type counter struct {
	n atomic.Int64
	_ [56]byte
}

// running is readers started by start.
type running struct {
	counts []counter
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// reads is the number of successful reads so far.
func (r *running) reads() int64 {
	var n int64
	for i := range r.counts {
		n += r.counts[i].n.Load()
	}
	return n
}

// stop ends the readers and waits for them.
func (r *running) stop() {
	r.cancel()
	r.wg.Wait()
}

// start runs n readers until stop.
func (l *load) start(ctx context.Context, n int) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{counts: make([]counter, n), cancel: cancel}
	for i := range n {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.read(ctx, &r.counts[i])
		}()
	}
	return r
}

// read is one reader's loop; it tallies its errors once, when it ends.
func (l *load) read(ctx context.Context, c *counter) {
	var sealed, failed int64
	var first error
	for ctx.Err() == nil {
		t := rand.IntN(len(l.tenants))
		_, err := l.store.Get(ctx, l.tenants[t], l.keys[rand.IntN(len(l.keys))])
		switch {
		case err == nil:
			l.mark(t, time.Since(l.origin))
			c.n.Add(1)
		case errors.Is(err, store.ErrSealed), errors.Is(err, kek.ErrDisabled):
			// Refused, as it should be: sealed, or (a cache wiped
			// between reading the record and its DEK) Key Vault refused.
			sealed++
		case ctx.Err() == nil:
			failed++
			if first == nil {
				first = err // store errors name tenant and key, never DEK bytes
			}
		}
	}
	l.mu.Lock()
	l.sealed, l.failed = l.sealed+sealed, l.failed+failed
	if l.firstErr == nil {
		l.firstErr = first
	}
	l.mu.Unlock()
}

// mark raises tenant t's last successful read to at; readers of the same
// tenant may finish out of order.
func (l *load) mark(t int, at time.Duration) {
	for {
		old := l.last[t].Load()
		if int64(at) <= old || l.last[t].CompareAndSwap(old, int64(at)) {
			return
		}
	}
}

// lastRead returns each tenant's last successful read since origin.
func (l *load) lastRead() []time.Duration {
	out := make([]time.Duration, len(l.last))
	for i := range l.last {
		out[i] = time.Duration(l.last[i].Load())
	}
	return out
}

// errs returns the error tallies once every reader has stopped.
func (l *load) errs() (sealed, failed int64, first error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sealed, l.failed, l.firstErr
}

// rate measures r's successful reads per second over window; the window is
// the measurement, not a wait for anything.
func rate(ctx context.Context, r *running, window time.Duration) (float64, error) {
	n0, t0 := r.reads(), time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	return float64(r.reads()-n0) / time.Since(t0).Seconds(), nil
}
