package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cmkd-io/cmkd/store"
)

// sealAll seals every tenant on the key at once. Sealing is persisted per
// tenant before its cache is wiped and before the broadcast, so a crash
// half-way leaves some tenants sealed and the next reconcile seals the rest.
func (r *Reconciler) sealAll(ctx context.Context, req Request, tenants []store.Tenant, reason string, why error) (Result, error) {
	r.kek.Invalidate(req.KeyURL)
	var errs []error
	for _, t := range tenants {
		if t.Sealed() {
			continue
		}
		ev := r.statusEvent(store.KindSealed, t.ID, req.KeyURL, t.KeyVersion, req, "")
		ev.Data["reason"] = reason
		if err := r.store.Seal(ctx, t.ID, reason, ev); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Warn("tenant sealed", slog.String("tenant", t.ID), slog.String("key", req.KeyURL),
			slog.String("reason", reason), slog.Any("why", why))
		if r.cfg.Broadcast != nil {
			r.cfg.Broadcast(t.ID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("seal tenants of %s: %w", req.KeyURL, err)
	}
	return Result{Outcome: Sealed, Reason: reason}, nil
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
