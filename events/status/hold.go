package status

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// outboxHold is a relay's hold on one sink's outbox entries, shared by
// Relay and EventGridRelay and owned by their Run: pending is the claimed,
// unpublished rest of the last batch, in outbox order, claimed at claimed;
// holdUntil is when entries given up as stale become claimable again;
// unmarked are published entries the store has not marked sent yet.
type outboxHold struct {
	store  *store.Store
	sink   string
	holder string
	batch  int
	claim  time.Duration

	pending   []store.OutboxEntry
	unmarked  []string
	claimed   time.Time
	holdUntil time.Time
	full      bool
}

// dropStaleClaims gives up entries whose claim is about to expire: past
// it, another relay may claim and publish them, and only what the store
// hands out again is still unsent. Claiming waits for the expiry, so the
// dropped entries come back first and the sink keeps outbox order. It
// reports whether it dropped any.
func (h *outboxHold) dropStaleClaims() bool {
	if len(h.pending) == 0 || time.Since(h.claimed) < h.claim*3/4 {
		return false
	}
	h.pending = nil
	h.holdUntil = h.claimed.Add(h.claim)
	return true
}

// claimBatch claims the next batch, unless dropped entries' claims are
// still running out; it returns how many it claimed.
func (h *outboxHold) claimBatch(ctx context.Context) (int, error) {
	if time.Now().Before(h.holdUntil) {
		return 0, nil
	}
	at := time.Now()
	es, err := h.store.ClaimOutboxFor(ctx, h.sink, h.holder, h.batch, h.claim)
	if err != nil {
		return 0, err
	}
	h.pending, h.claimed, h.full = es, at, len(es) == h.batch
	return len(es), nil
}

// markSent marks the published entries sent, even when ctx has ended: they
// were published. While the store refuses they are tried again at each
// step — until then the same tenants' later entries cannot be claimed —
// and should the process die first, their claims run out and another
// relay publishes them again.
func (h *outboxHold) markSent(ctx context.Context) error {
	if len(h.unmarked) == 0 {
		return nil
	}
	if err := h.store.MarkSentFor(context.WithoutCancel(ctx), h.sink, h.unmarked...); err != nil {
		return err
	}
	h.unmarked = nil
	return nil
}

// nextBackoff doubles the wait after a failed publish, from first up to
// MaxBackoff, and returns it with the jittered wait to sleep now.
func nextBackoff(prev, first time.Duration) (backoff, wait time.Duration) {
	backoff = min(max(prev*2, first), MaxBackoff)
	return backoff, time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64())) // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
}
