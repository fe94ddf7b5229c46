package handlers

import (
	"context"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// warnExpiry sends key.expired once the key's latest version has expired and
// key.near_expiry once it is within NearExpiry of it, each once per tenant
// and version however often it is seen. It decides from the probed key
// alone: a KeyNearExpiry event is a hint to probe, and one anybody can
// forge, so trusting it would publish a false warning and, through the
// warning's deterministic id, suppress the real one.
func (r *Reconciler) warnExpiry(ctx context.Context, req Request, tenants []store.Tenant, latest kek.KeyState) error {
	exp := latest.Expires
	if exp.IsZero() {
		return nil
	}
	now := r.cfg.Now()
	var kind cmkd.Kind
	switch {
	case latest.Outcome == kek.Expired || !now.Before(exp):
		kind = cmkd.KindKeyExpired
	case exp.Sub(now) <= r.cfg.NearExpiry:
		kind = cmkd.KindKeyNearExpiry
	default:
		return nil
	}
	version := latest.Key.Version
	evs := r.eventsFor(tenants, kind, req, version, version, func(ev *cmkd.StatusEvent, _ store.Tenant) {
		ev.Expires = exp.UTC()
	})
	if err := r.store.AppendOutbox(ctx, evs...); err != nil {
		return fmt.Errorf("warn of expiry of %s: %w", req.Key, err)
	}
	return nil
}
