package worker

import (
	"context"
	"sync"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
)

// flight is one reconcile of a key that any number of callers wait for.
type flight struct {
	req  handlers.Request
	done chan struct{}
	res  handlers.Result
	err  error
}

// keyQueue runs at most one reconcile per key at a time. A request that
// arrives while one runs joins the single next run instead of queueing its
// own, so a burst of duplicate events for a key costs two probes at most,
// and every caller's event is answered by a probe that started after it
// arrived (so nothing Key Vault did before the event is missed).
type keyQueue struct {
	run func(ctx context.Context, req handlers.Request) (handlers.Result, error)
	ctx context.Context // runs outlive their callers: a caller that gives up does not stop the work

	mu   sync.Mutex
	keys map[cmkd.KeyID]*keySlot // by versionless key: one queue per key, however spelled
	wg   sync.WaitGroup
}

type keySlot struct {
	running bool
	next    *flight
}

func newKeyQueue(ctx context.Context, run func(context.Context, handlers.Request) (handlers.Result, error)) *keyQueue {
	return &keyQueue{run: run, ctx: ctx, keys: map[cmkd.KeyID]*keySlot{}}
}

// do asks for req.Key to be reconciled and waits for the run that covers
// the request, or for ctx.
func (q *keyQueue) do(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	f := q.enqueue(req)
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return handlers.Result{}, ctx.Err()
	}
}

func (q *keyQueue) enqueue(req handlers.Request) *flight {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := req.Key.Versionless()
	req.Key = key
	slot := q.keys[key]
	if slot == nil {
		slot = &keySlot{}
		q.keys[key] = slot
	}
	if slot.next == nil {
		slot.next = &flight{req: req, done: make(chan struct{})}
	} else if slot.next.req.Progress == nil && req.Progress != nil {
		slot.next.req.Progress = req.Progress
	}
	f := slot.next
	if !slot.running {
		q.startLocked(key, slot)
	}
	return f
}

func (q *keyQueue) startLocked(key cmkd.KeyID, slot *keySlot) {
	f := slot.next
	slot.next, slot.running = nil, true
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		f.res, f.err = q.run(q.ctx, f.req)
		close(f.done)
		q.mu.Lock()
		defer q.mu.Unlock()
		if slot.next != nil {
			q.startLocked(key, slot)
			return
		}
		slot.running = false
		delete(q.keys, key)
	}()
}

// wait blocks until every run has ended.
func (q *keyQueue) wait() { q.wg.Wait() }
