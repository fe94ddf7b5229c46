package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// Worker is cmkd's runtime; see the package doc.
type Worker struct {
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	metrics *metrics
	sched   *scheduler

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
	w := &Worker{cfg: cfg, store: cfg.Store, log: cfg.Logger, metrics: m}
	w.sched = newScheduler(cfg, cfg.Reconciler, cfg.Store, cfg.Limits, m)
	if err := cfg.Registerer.Register(keyCollector{w.sched}); err != nil {
		return nil, err
	}
	return w, nil
}

// Run runs the worker until ctx ends: the scheduler that checks every key
// on its own schedule and runs rewraps, the event sources (each handing its
// events to Handle through the worker's middleware), the runners (the
// relay), seal broadcasts and the HTTP server. Then it waits up to
// ShutdownTimeout for checks and rewraps — a rewrap stops after the DEKs
// under way — and whatever was cut short resumes on the next start.
func (w *Worker) Run(ctx context.Context) error {
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
	// Ready once the store answers and every key is scheduled: a long
	// rewrap must not keep the replica out of service.
	g.Go(func() error { return w.sched.run(gctx, func() { w.ready.Store(true) }) })
	g.Go(func() error { return w.runChanges(gctx) })
	err = g.Wait()

	w.ready.Store(false)
	w.sched.shutdown(w.cfg.ShutdownTimeout)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// Reconcile checks one key now — probe, and seal, unseal or warn as the
// probe says — and returns the check's result. It is coalesced with other
// requests for the same key in this process and runs under the key's lease
// across processes (ErrBusy when another replica holds it). A rewrap the
// check finds needed runs in the background, while the key's checks go on.
func (w *Worker) Reconcile(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	if req.Key.IsZero() {
		return handlers.Result{}, cmkd.ErrInvalidKeyID
	}
	return w.sched.check(ctx, req)
}

// RewrapKey brings req.Key's DEKs to its newest usable version now and waits
// for it, as `cmkd rewrap` does: a check, then the rewrap, while the key is
// checked on its schedule meanwhile, so that a disable during the rewrap
// seals at once and stops it. It is for a process that is not running the
// worker (Run); the result is the rewrap's, or the check's when nothing had
// to move.
func (w *Worker) RewrapKey(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	key := req.Key.Versionless()
	s := newScheduler(w.cfg, w.cfg.Reconciler, w.store, w.cfg.Limits, w.metrics)
	s.only = key
	if err := s.refresh(ctx); err != nil {
		return handlers.Result{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx, nil) }()
	defer func() {
		stop()
		<-done
		s.shutdown(w.cfg.ShutdownTimeout)
	}()
	req.Key = key
	f, err := s.ask(ctx, req, false)
	if err != nil {
		return handlers.Result{}, err
	}
	if f.err != nil || f.task == nil {
		return f.res, f.err
	}
	select {
	case <-f.task.done:
		return f.task.res, f.task.err
	case <-ctx.Done():
		return handlers.Result{}, ctx.Err()
	}
}

// ErrBusy means another replica holds the key's lease: it is working on the
// key right now, so this request can be retried later or dropped.
var ErrBusy = errors.New("key is being worked on by another replica")
