package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// Worker is cmkd's runtime; see the package doc.
type Worker struct {
	cfg     Config
	store   *store.Store
	rec     *handlers.Reconciler
	log     *slog.Logger
	metrics *metrics
	sem     chan struct{} // bounds keys reconciled at once

	qmu   sync.Mutex
	queue *keyQueue // set by Run; until then Reconcile runs unqueued

	ready atomic.Bool
}

// New returns a Worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Worker{
		cfg: cfg, store: cfg.Store, rec: cfg.Reconciler, log: cfg.Logger, metrics: m,
		sem: make(chan struct{}, cfg.Concurrency),
	}, nil
}

// Run runs the worker until ctx ends: the event sources (each handing its
// events to Handle through the worker's middleware), the runners (the
// relay), the reconcile loop, seal broadcasts and the HTTP server. Then it waits up to
// ShutdownTimeout for in-flight reconciles; whatever is cut short resumes on
// the next start, from what the store holds.
func (w *Worker) Run(ctx context.Context) error {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	q := newKeyQueue(workCtx, w.leased)
	w.qmu.Lock()
	w.queue = q
	w.qmu.Unlock()

	stopBroadcast, err := w.subscribeSeals()
	if err != nil {
		return err
	}
	defer stopBroadcast()

	g, gctx := errgroup.WithContext(ctx)
	if w.cfg.HTTPAddr != "" {
		srv, err := w.listen()
		if err != nil {
			return err
		}
		g.Go(func() error { return serve(gctx, srv) })
	}
	for _, r := range w.cfg.Runners {
		g.Go(func() error { return r.Run(gctx) })
	}
	for _, s := range w.cfg.Sources {
		h := w.Wrap(s.Name(), w.Handle)
		g.Go(func() error { return s.Run(gctx, h) })
	}
	g.Go(func() error { return w.reconcileLoop(gctx) })
	err = g.Wait()

	w.ready.Store(false)
	drained := make(chan struct{})
	go func() { q.wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn("shutdown timeout: abandoning in-flight work; it resumes on restart")
		cancelWork()
		<-drained
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// Reconcile reconciles one key now: coalesced with other requests for the
// same key in this process, under the key's lease across processes.
func (w *Worker) Reconcile(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	w.qmu.Lock()
	q := w.queue
	w.qmu.Unlock()
	if q == nil {
		return w.leased(ctx, req)
	}
	return q.do(ctx, req)
}

// ErrBusy means another replica holds the key's lease: it is reconciling the
// key right now, so this request can be retried later or dropped.
var ErrBusy = errors.New("key is being reconciled by another replica")

// leased runs one reconcile holding the key's lease, renewing it as long as
// the reconcile runs; the reconciler checks it between rewrap batches.
func (w *Worker) leased(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-ctx.Done():
		return handlers.Result{}, ctx.Err()
	}
	req.Key = req.Key.Versionless()
	name := req.Key.LeaseName()
	lease, err := w.store.AcquireLease(ctx, name, w.cfg.Instance, w.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		return handlers.Result{}, ErrBusy
	}
	if err != nil {
		return handlers.Result{}, fmt.Errorf("lease %s: %w", name, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	held := &heldLease{lease: lease}
	go w.renew(rctx, held, cancel)
	req.Guard = func(ctx context.Context) error { return w.store.CheckLease(ctx, held.get()) }

	start := time.Now()
	res, err := w.rec.Reconcile(rctx, req)
	w.metrics.observe(res, err, time.Since(start))
	cancel()
	if rerr := w.store.ReleaseLease(context.WithoutCancel(ctx), held.get()); rerr != nil {
		w.log.Warn("release lease", slog.String("lease", name), slog.Any("err", rerr))
	}
	return res, err
}

type heldLease struct {
	mu    sync.Mutex
	lease store.Lease
}

func (h *heldLease) get() store.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

func (h *heldLease) set(l store.Lease) {
	h.mu.Lock()
	h.lease = l
	h.mu.Unlock()
}

// renew keeps the lease alive; if it is lost, the work is stopped.
func (w *Worker) renew(ctx context.Context, held *heldLease, stop context.CancelFunc) {
	t := time.NewTicker(w.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l, err := w.store.RenewLease(ctx, held.get(), w.cfg.LeaseTTL)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Error("lease lost: stopping work on key", slog.String("lease", held.get().Name), slog.Any("err", err))
					stop()
				}
				return
			}
			held.set(l)
		}
	}
}
