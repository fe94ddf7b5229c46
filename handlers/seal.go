package handlers

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cmkd-io/cmkd/store"
)

// sealAll seals every tenant on the key at once, in one transaction per
// sealBatch tenants: reads of all of them stop together, at the commit. Caches
// are wiped and the broadcast sent after the seal is persisted. A crash
// half-way leaves whole batches sealed and the next reconcile seals the rest.
func (r *Reconciler) sealAll(ctx context.Context, req Request, tenants []store.Tenant, reason string, why error) (Result, error) {
	r.kek.Invalidate(req.KeyURL)
	var evs []store.StatusEvent
	for _, t := range tenants {
		if !t.Sealed() {
			ev := r.statusEvent(store.KindSealed, t.ID, req.KeyURL, t.KeyVersion, req, "")
			ev.Data["reason"] = reason
			evs = append(evs, ev)
		}
	}
	for len(evs) > 0 {
		n := min(len(evs), sealBatch)
		changed, err := r.store.SealTenants(ctx, reason, evs[:n])
		if err != nil {
			return Result{}, fmt.Errorf("seal tenants of %s: %w", req.KeyURL, err)
		}
		r.statusWritten()
		r.sealed(req, evs[:n], changed, reason, why)
		evs = evs[n:]
	}
	return Result{Outcome: Sealed, Reason: reason}, nil
}

// sealBatch bounds one seal transaction, so a key with very many tenants
// does not hold the database's write lock for long.
const sealBatch = 1000

// sealed logs the tenants this call changed and broadcasts every tenant of
// the batch: a tenant another writer sealed first is dropped from caches all
// the same, which costs nothing and covers a writer that died before its
// broadcast.
func (r *Reconciler) sealed(req Request, batch []store.StatusEvent, changed []string, reason string, why error) {
	for _, t := range changed {
		r.log.Warn("tenant sealed", slog.String("tenant", t), slog.String("key", req.KeyURL),
			slog.String("reason", reason), slog.Any("why", why))
	}
	if r.cfg.Broadcast != nil {
		for _, ev := range batch {
			r.cfg.Broadcast(ev.Tenant)
		}
	}
}

// whileUnreachable keeps serving from caches while Key Vault cannot be
// asked, for at most UnreachableGrace from the first failure in a row; then
// it seals with reason unreachable. The clock lives in memory: a restart
// starts the grace again, which errs towards availability by at most one
// grace period.
func (r *Reconciler) whileUnreachable(ctx context.Context, req Request, tenants []store.Tenant, why error) (Result, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	since, ok := r.unreachable[req.KeyURL]
	if !ok {
		since = now
		r.unreachable[req.KeyURL] = now
	}
	r.mu.Unlock()
	if now.Sub(since) < r.cfg.UnreachableGrace {
		r.log.Warn("key vault unreachable, serving within grace", slog.String("key", req.KeyURL),
			slog.Duration("for", now.Sub(since)), slog.Any("why", why))
		return Result{Outcome: Waiting}, nil
	}
	return r.sealAll(ctx, req, tenants, ReasonUnreachable, why)
}

func (r *Reconciler) clearUnreachable(keyURL string) {
	r.mu.Lock()
	delete(r.unreachable, keyURL)
	r.mu.Unlock()
}
