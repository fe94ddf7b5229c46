package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// unsealAll opens every sealed tenant on a key that probed usable. The store
// unseals a tenant only after one of its DEKs unwraps and matches its key
// check value, so a probe that was wrong cannot open anything; it logs each
// tenant it opens.
func (r *Reconciler) unsealAll(ctx context.Context, req Request, tenants []store.Tenant) error {
	var errs []error
	for _, t := range tenants {
		if !t.Sealed() || !sealedBy(t, req.Key) {
			continue
		}
		ev := r.statusEvent(cmkd.KindUnsealed, t, req, t.VersionOf(req.Key), "")
		ev.PreviousReason = t.SealReason
		if err := r.store.Unseal(ctx, t.ID, ev); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unseal tenants of %s: %w", req.Key, err)
	}
	return nil
}
