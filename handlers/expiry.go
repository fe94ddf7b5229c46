package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// warnExpiry sends key.expired once the key's latest version has expired and
// key.near_expiry once it is within NearExpiry of it (or Key Vault said so),
// each once per tenant and version however often it is seen.
func (r *Reconciler) warnExpiry(ctx context.Context, req Request, tenants []store.Tenant, latest kek.KeyState) error {
	exp := latest.Expires
	if exp.IsZero() {
		return nil
	}
	now := r.cfg.Now()
	var kind string
	switch {
	case latest.Outcome == kek.Expired || !now.Before(exp):
		kind = store.KindKeyExpired
	case exp.Sub(now) <= r.cfg.NearExpiry || req.EventType == events.TypeKeyNearExpiry:
		kind = store.KindKeyNearExpiry
	default:
		return nil
	}
	version := latest.Key.Version
	evs := make([]store.StatusEvent, 0, len(tenants))
	for _, t := range tenants {
		ev := r.statusEvent(kind, t.ID, req.KeyURL, version, req, version)
		ev.Data["expires"] = exp.UTC().Format(time.RFC3339)
		evs = append(evs, ev)
	}
	if err := r.store.Publish(ctx, evs...); err != nil {
		return fmt.Errorf("warn of expiry of %s: %w", req.KeyURL, err)
	}
	return nil
}
