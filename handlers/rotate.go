package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/failpoint"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// RewrapStats describes one rewrap.
type RewrapStats struct {
	Target    string
	Previous  []string // versions DEKs were moved from
	Total     int      // DEKs not under Target when the rewrap started
	Rewrapped int      // DEKs this rewrap moved
	Conflicts int      // DEKs another writer moved first
	Sampled   int      // DEKs unwrapped again remotely afterwards
	// Unreadable counts DEKs Key Vault could not unwrap (a corrupted
	// wrapping): set aside and reported (dek.unreadable), not moved.
	Unreadable int
}

// plan decides whether every DEK on the key is under the newest usable
// version; if not, it returns the rewrap to run.
func (r *Reconciler) plan(ctx context.Context, req Request, tenants []store.Tenant, a assessment) (Result, *Plan, error) {
	target, err := r.kek.WrapTarget(ctx, a.latest)
	if err != nil {
		return Result{}, nil, err
	}
	if target == "" {
		r.log.Warn("no usable key version to wrap under", slog.String("key", req.Key.String()))
		return Result{Outcome: InStep}, nil, nil
	}
	stats := RewrapStats{Target: target}
	for v, n := range a.inUse {
		if v != target && n > 0 {
			stats.Total += n
			stats.Previous = append(stats.Previous, v)
		}
	}
	slices.Sort(stats.Previous)
	if stats.Total == 0 {
		res, err := r.recordVersion(ctx, req, tenants, target)
		return res, nil, err
	}
	return Result{Outcome: InStep, Version: target}, &Plan{stats: stats, tenants: tenants}, nil
}

// Rewrap runs plan: it moves the key's DEKs to the plan's target version.
// Its Key Vault calls are bulk work, which probes go before. It stops when
// ctx ends or req.Guard fails, between DEKs, and resumes from what the
// store holds: a DEK moved before the stop is not moved again.
func (r *Reconciler) Rewrap(ctx context.Context, req Request, plan *Plan) (Result, error) {
	defer r.statusWritten()
	req.Key = req.Key.Versionless()
	stats := plan.stats
	if err := r.rewrap(kek.Bulk(ctx), req, plan.tenants, &stats); err != nil {
		return Result{Rewrap: &stats, Unreadable: stats.Unreadable}, err
	}
	return Result{Outcome: Rewrapped, Version: stats.Target, Rewrap: &stats, Unreadable: stats.Unreadable}, nil
}

// recordVersion handles a key whose DEKs are all under target already: it
// records target for tenants that still name another version (a rewrap that
// crashed after its last swap, or a new tenant) and reports, once, the
// completion and the retirement of the versions they named: CompleteRewrap
// succeeds only when no DEK is under another version.
func (r *Reconciler) recordVersion(ctx context.Context, req Request, tenants []store.Tenant, target string) (Result, error) {
	var evs []cmkd.StatusEvent
	var previous []string
	stale := false
	for _, t := range tenants {
		v := t.VersionOf(req.Key)
		if v == target || movingAway(t, req.Key) {
			continue
		}
		stale = true
		if v != "" {
			ev := r.statusEvent(cmkd.KindRewrapCompleted, t, req, target, target)
			ev.PreviousVersion = v
			evs = append(evs, ev)
			if !slices.Contains(previous, v) {
				previous = append(previous, v)
			}
		}
	}
	if stale {
		slices.Sort(previous)
		evs = append(evs, r.retiredEvents(req, tenants, previous)...)
		if err := r.store.CompleteRewrap(ctx, req.Key, target, evs...); err != nil {
			return Result{}, err
		}
	}
	return Result{Outcome: InStep, Version: target}, nil
}

// rewrap moves every DEK not under stats.Target to it: a canary first, then
// batches with bounded concurrency, each DEK swapped only if still wrapped
// as read, then a random sample unwrapped again remotely. It resumes from
// whatever the store holds, so a crash at any point only repeats work.
func (r *Reconciler) rewrap(ctx context.Context, req Request, tenants []store.Tenant, stats *RewrapStats) error {
	start := r.cfg.Now()
	targetKID := req.Key.At(stats.Target)
	r.appendAll(ctx, r.eventsFor(tenants, cmkd.KindRewrapStarted, req, stats.Target, stats.Target,
		func(ev *cmkd.StatusEvent, _ store.Tenant) { ev.DEKs = &cmkd.DEKCounts{Total: stats.Total} }))
	r.log.Info("rewrap started", slog.String("key", req.Key.String()), slog.String("version", stats.Target), slog.Int("deks", stats.Total))

	run := newRewrapRun(r, req, targetKID, stats)
	if err := run.canary(ctx); err != nil {
		return r.failRewrap(ctx, req, tenants, stats, err)
	}
	if err := run.batches(ctx); err != nil {
		return r.failRewrap(ctx, req, tenants, stats, err)
	}
	if err := run.verifySample(ctx); err != nil {
		return r.failRewrap(ctx, req, tenants, stats, err)
	}
	took := r.cfg.Now().Sub(start)
	evs := r.eventsFor(tenants, cmkd.KindRewrapCompleted, req, stats.Target, stats.Target, func(ev *cmkd.StatusEvent, t store.Tenant) {
		ev.PreviousVersion = previousOf(t, req.Key, stats)
		ev.DEKs = &cmkd.DEKCounts{Total: run.perTenant[t.ID].total, Rewrapped: run.perTenant[t.ID].moved, Duration: took}
	})
	// The versions moved from are retired in the same transaction: a
	// crash between the two would leave them never reported.
	evs = append(evs, r.retiredEvents(req, tenants, stats.Previous)...)
	if err := r.store.CompleteRewrap(ctx, req.Key, stats.Target, evs...); err != nil {
		return err
	}
	r.log.Info("rewrap completed", slog.String("key", req.Key.String()), slog.String("version", stats.Target),
		slog.Int("rewrapped", stats.Rewrapped), slog.Int("conflicts", stats.Conflicts), slog.Int("sampled", stats.Sampled))
	return nil
}

func previousOf(t store.Tenant, key cmkd.KeyID, stats *RewrapStats) string {
	if v := t.VersionOf(key); v != "" && v != stats.Target {
		return v
	}
	if len(stats.Previous) > 0 {
		return stats.Previous[0]
	}
	return ""
}

// failRewrap reports a stopped rewrap. The DEKs not moved yet stay under
// their old version, readable. The DEKs moved stay moved while the target
// version works — each was checked against its key check value when it was
// unwrapped, and the rewrap resumes from there — but when the target went
// bad (disabled, deleted, or unwrapping to the wrong bytes) while a
// previous version still works, they are put back under it, so that no DEK
// stays under a version that cannot unwrap it.
func (r *Reconciler) failRewrap(ctx context.Context, req Request, tenants []store.Tenant, stats *RewrapStats, cause error) error {
	ctx = context.WithoutCancel(ctx) // the stop may be the context's end: finish the report all the same
	r.log.Error("rewrap failed", slog.String("key", req.Key.String()), slog.String("version", stats.Target), slog.Any("err", cause))
	reason := cause.Error()
	if back, err := r.keepReadable(ctx, req, stats, cause); err != nil {
		r.log.Error("rewrap failed: putting DEKs back under the previous version", slog.String("key", req.Key.String()), slog.Any("err", err))
	} else if back > 0 {
		reason += fmt.Sprintf("; target version %s is not usable: %d DEKs put back under the previous version", stats.Target, back)
	}
	r.appendAll(ctx, r.eventsFor(tenants, cmkd.KindRewrapFailed, req, stats.Target, "", func(ev *cmkd.StatusEvent, _ store.Tenant) {
		ev.Reason = reason
		ev.DEKs = &cmkd.DEKCounts{Total: stats.Total, Rewrapped: stats.Rewrapped}
	}))
	return fmt.Errorf("rewrap %s to %s: %w", req.Key, stats.Target, cause)
}

// keepReadable puts the DEKs under the target back under their previous
// wrapping when the target no longer unwraps and that previous version
// does. It returns how many it put back.
func (r *Reconciler) keepReadable(ctx context.Context, req Request, stats *RewrapStats, cause error) (int, error) {
	target := req.Key.At(stats.Target)
	if !errors.Is(cause, errSampleFailed) && r.unwraps(ctx, target) {
		return 0, nil
	}
	usable := map[string]bool{}
	for _, v := range stats.Previous {
		usable[v] = r.unwraps(ctx, req.Key.At(v))
	}
	back := 0
	for {
		deks, err := r.store.DEKsAt(ctx, target, r.cfg.RewrapBatch)
		if err != nil {
			return back, err
		}
		progress := false
		for _, d := range deks {
			if d.Previous == nil || !usable[d.Previous.Version()] {
				continue
			}
			err := r.store.RollbackWrapping(ctx, d.ID, d.Current.KID)
			if err != nil && !errors.Is(err, store.ErrCASConflict) {
				return back, err
			}
			back++
			progress = true
		}
		if !progress {
			return back, nil
		}
	}
}

// unwraps reports whether Key Vault would unwrap under kid: the version
// is there and enabled (an expired version still unwraps).
func (r *Reconciler) unwraps(ctx context.Context, kid cmkd.KeyID) bool {
	r.kek.Invalidate(kid)
	st, err := r.kek.Probe(ctx, kid)
	return err == nil && (st.Outcome == kek.Usable || st.Outcome == kek.Expired)
}

// retiredEvents reports each of versions as retired, for every tenant:
// safe to disable in Key Vault. They go with CompleteRewrap, which
// succeeds only when no DEK is wrapped under any of them.
func (r *Reconciler) retiredEvents(req Request, tenants []store.Tenant, versions []string) []cmkd.StatusEvent {
	var evs []cmkd.StatusEvent
	for _, v := range versions {
		evs = append(evs, r.eventsFor(tenants, cmkd.KindVersionRetired, req, v, v, nil)...)
	}
	return evs
}

// appendAll writes events that go with no state change. Losing one of
// these is not worth failing the work they describe, so errors are logged.
func (r *Reconciler) appendAll(ctx context.Context, evs []cmkd.StatusEvent) {
	if len(evs) == 0 {
		return
	}
	if err := r.store.AppendOutbox(ctx, evs...); err != nil {
		r.log.Error("write status events", slog.String("kind", string(evs[0].Kind)), slog.String("key", evs[0].Key.String()), slog.Any("err", err))
	}
}

type tenantCount struct{ total, moved int }

// rewrapRun is the state of one rewrap.
type rewrapRun struct {
	r         *Reconciler
	req       Request
	targetKID cmkd.KeyID
	stats     *RewrapStats

	mu        sync.Mutex
	perTenant map[string]tenantCount
	sample    *reservoir
	done      int
}

func newRewrapRun(r *Reconciler, req Request, targetKID cmkd.KeyID, stats *RewrapStats) *rewrapRun {
	n := int(float64(stats.Total)*r.cfg.SampleRate + 0.999)
	return &rewrapRun{
		r: r, req: req, targetKID: targetKID, stats: stats,
		perTenant: map[string]tenantCount{},
		sample:    newReservoir(max(1, min(n, maxSample))),
	}
}

// canary moves one DEK, unwrapping the new wrapping remotely before the
// swap, so that a new version that cannot unwrap is found before any other
// DEK depends on it.
func (run *rewrapRun) canary(ctx context.Context) error {
	deks, err := run.r.store.ListDEKsNotAt(ctx, run.req.Key, run.stats.Target, "", 1)
	if err != nil || len(deks) == 0 {
		return err
	}
	if err := run.move(ctx, deks[0], true); err != nil {
		return fmt.Errorf("canary dek %s: %w", deks[0].ID, err)
	}
	return nil
}

func (run *rewrapRun) batches(ctx context.Context) error {
	after := ""
	for {
		if run.req.Guard != nil {
			if err := run.req.Guard(ctx); err != nil {
				return fmt.Errorf("stopped: %w", err)
			}
		}
		deks, err := run.r.store.ListDEKsNotAt(ctx, run.req.Key, run.stats.Target, after, run.r.cfg.RewrapBatch)
		if err != nil {
			return err
		}
		if len(deks) == 0 {
			return nil
		}
		after = deks[len(deks)-1].ID
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(run.r.cfg.RewrapConcurrency)
		var stop error
		for _, d := range deks {
			if run.req.Stopped != nil {
				if stop = run.req.Stopped(); stop != nil {
					break
				}
			}
			g.Go(func() error { return run.move(gctx, d, false) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		failpoint.Hit(failpoint.RewrapBatch)
		if stop != nil {
			return fmt.Errorf("stopped: %w", stop)
		}
	}
}

// move re-wraps one DEK; a DEK another writer moved first is not an error,
// nor is one Key Vault cannot unwrap: that one is set aside.
func (run *rewrapRun) move(ctx context.Context, d store.DEK, verify bool) error {
	w, err := run.r.store.RewrapDEK(ctx, d, run.targetKID, verify)
	if unreadable(err) {
		return run.quarantine(ctx, d, err)
	}
	conflict := errors.Is(err, store.ErrCASConflict)
	if err != nil && !conflict {
		return err
	}
	failpoint.Hit(failpoint.RewrapDEK)
	run.mu.Lock()
	defer run.mu.Unlock()
	tc := run.perTenant[d.Tenant]
	tc.total++
	if conflict {
		run.stats.Conflicts++
	} else {
		tc.moved++
		run.stats.Rewrapped++
		if !verify {
			run.sample.add(sampled{dek: d, w: w})
		}
	}
	run.perTenant[d.Tenant] = tc
	run.done++
	if run.req.Progress != nil {
		run.req.Progress(run.done, run.stats.Total)
	}
	return nil
}

// verifySample unwraps a random sample of the new wrappings remotely. A
// mismatch puts those DEKs back under their previous wrapping and fails.
func (run *rewrapRun) verifySample(ctx context.Context) error {
	var bad []error
	for _, s := range run.sample.items {
		run.stats.Sampled++
		err := run.r.store.VerifyWrapping(ctx, s.dek, s.w)
		if err == nil {
			continue
		}
		if rbErr := run.r.store.RollbackWrapping(ctx, s.dek.ID, s.w.KID); rbErr != nil {
			err = errors.Join(err, rbErr)
		}
		bad = append(bad, err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d of %d sampled deks: %w", errSampleFailed, len(bad), run.stats.Sampled, errors.Join(bad...))
	}
	return nil
}

// unreadable reports whether err says this one DEK cannot be unwrapped —
// Key Vault refused its wrapping as malformed, or unwrapped it to bytes
// that fail its key check value — rather than that the key is not usable.
func unreadable(err error) bool {
	var ue *store.UnwrapError
	return errors.As(err, &ue) && (errors.Is(err, kek.ErrBadRequest) || errors.Is(err, store.ErrIntegrity))
}

// unreadableSentinel is unreadable for a probe's sentinel DEK: only Key
// Vault refusing its wrapping as malformed. A sentinel that unwraps to the
// wrong bytes seals (ReasonIntegrity): the version itself is in doubt.
func unreadableSentinel(err error) bool {
	var ue *store.UnwrapError
	return errors.As(err, &ue) && errors.Is(err, kek.ErrBadRequest)
}

// quarantine sets d aside and reports it, so that the rewrap goes on.
func (run *rewrapRun) quarantine(ctx context.Context, d store.DEK, cause error) error {
	reason := "key vault cannot unwrap it"
	if errors.Is(cause, store.ErrIntegrity) {
		reason = "unwrapped to bytes that fail its key check value"
	}
	if err := run.r.setAside(ctx, run.req, d, reason); err != nil {
		return err
	}
	run.mu.Lock()
	run.stats.Unreadable++
	run.mu.Unlock()
	return nil
}

// setAside quarantines d and reports it (dek.unreadable, once per DEK).
func (r *Reconciler) setAside(ctx context.Context, req Request, d store.DEK, reason string) error {
	ev := r.statusEvent(cmkd.KindDEKUnreadable, store.Tenant{ID: d.Tenant}, req, d.Version(), d.ID)
	ev.Reason = reason
	return r.store.QuarantineDEK(context.WithoutCancel(ctx), d, reason, ev)
}

// errSampleFailed: DEKs re-wrapped under the target did not unwrap to
// themselves — the target cannot be trusted with any DEK.
var errSampleFailed = errors.New("sampled deks failed verification")
