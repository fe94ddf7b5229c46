package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cmkd-io/cmkd/store"
)

// unsealAll opens every sealed tenant on a key that probed usable. The store
// unseals a tenant only after one of its DEKs unwraps and matches its key
// check value, so a probe that was wrong cannot open anything.
func (r *Reconciler) unsealAll(ctx context.Context, req Request, tenants []store.Tenant) error {
	var errs []error
	for _, t := range tenants {
		if !t.Sealed() {
			continue
		}
		ev := r.statusEvent(store.KindUnsealed, t.ID, req.KeyURL, t.KeyVersion, req, "")
		ev.Data["previous_reason"] = t.SealReason
		if err := r.store.Unseal(ctx, t.ID, ev); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("tenant unsealed", slog.String("tenant", t.ID), slog.String("key", req.KeyURL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unseal tenants of %s: %w", req.KeyURL, err)
	}
	return nil
}
