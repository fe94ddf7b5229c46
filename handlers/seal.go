package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// sealAll seals every tenant on the key at once, in one transaction per
// sealBatch tenants: reads of all of them stop together, at the commit. Caches
// are wiped and the broadcast sent after the seal is persisted. A crash
// half-way leaves whole batches sealed and the next reconcile seals the rest.
// The store logs each tenant it seals; this logs why, once per key.
func (r *Reconciler) sealAll(ctx context.Context, req Request, tenants []store.Tenant, reason string, cause error) (Result, error) {
	r.kek.Invalidate(req.Key)
	// One reason per layer: a platform key seals its tenants with
	// platform_key_<reason>, so that the operator, not the customer, acts.
	byReason := map[string][]cmkd.StatusEvent{}
	var reasons []string
	for _, t := range tenants {
		if !t.Sealed() {
			why := layerReason(t, req.Key, reason)
			ev := r.statusEvent(cmkd.KindSealed, t, req, t.VersionOf(req.Key), "")
			ev.Reason, ev.Note = why, cmkd.ReasonNote(why)
			if _, ok := byReason[why]; !ok {
				reasons = append(reasons, why)
			}
			byReason[why] = append(byReason[why], ev)
		}
	}
	for _, why := range reasons {
		r.log.Warn("key not usable: sealing its tenants", slog.String("key", req.Key.String()),
			slog.String("reason", why), slog.Int("tenants", len(byReason[why])), slog.Any("err", cause))
		for evs := byReason[why]; len(evs) > 0; {
			n := min(len(evs), sealBatch)
			if _, err := r.store.SealTenants(ctx, why, evs[:n]); err != nil {
				return Result{}, fmt.Errorf("seal tenants of %s: %w", req.Key, err)
			}
			r.statusWritten()
			r.broadcast(evs[:n])
			evs = evs[n:]
		}
	}
	return Result{Outcome: Sealed, Reason: reason}, nil
}

// sealBatch bounds one seal transaction, so a key with very many tenants
// does not hold the database's write lock for long.
const sealBatch = 1000

// broadcast tells every process to drop the batch's tenants' cached DEKs: a
// tenant another writer sealed first is dropped all the same, which costs
// nothing and covers a writer that died before its broadcast.
func (r *Reconciler) broadcast(batch []cmkd.StatusEvent) {
	if r.cfg.Broadcast == nil {
		return
	}
	for _, ev := range batch {
		r.cfg.Broadcast(ev.Tenant)
	}
}

// whileUnreachable keeps serving from caches while Key Vault cannot be
// asked, for at most UnreachableGrace since Key Vault last confirmed the
// key's state — by this process's probes or as recorded by any replica
// (req.Confirmed), so a restart or another replica grants no new grace;
// with no confirmation known, since the first failed probe in a row. Then
// it seals with reason unreachable.
func (r *Reconciler) whileUnreachable(ctx context.Context, req Request, tenants []store.Tenant, a assessment) (Result, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	if _, ok := r.unreachable[req.Key]; !ok {
		r.unreachable[req.Key] = a.at
	}
	since := r.unconfirmedSinceLocked(req)
	r.mu.Unlock()
	if now.Sub(since) < r.cfg.UnreachableGrace {
		r.log.Warn("key vault unreachable, serving within grace", slog.String("key", req.Key.String()),
			slog.Duration("unconfirmed_for", now.Sub(since)), slog.Any("err", a.transient))
		return Result{Outcome: Waiting}, nil
	}
	return r.sealAll(ctx, req, tenants, cmkd.ReasonUnreachable, a.transient)
}

// unconfirmedSinceLocked is when Key Vault last confirmed req.Key's state,
// or else when its first failed probe in a row began; zero if neither is
// known.
func (r *Reconciler) unconfirmedSinceLocked(req Request) time.Time {
	since := r.confirmed[req.Key]
	if req.Confirmed.After(since) {
		since = req.Confirmed
	}
	if since.IsZero() {
		since = r.unreachable[req.Key]
	}
	return since
}

// lastProbeFloor is the least time a probe is given, however little of
// the grace is left: a vault that answers at all answers within it.
const lastProbeFloor = time.Second

// graceLeft bounds how long this check's probe may wait for Key Vault
// once the key's last check found it not answering: what is left of the
// unreachable grace (at least lastProbeFloor), so that a hung vault's
// tenants seal when the grace ends, not when a probe begun before then
// gives up. After a check that got an answer there is no bound (0): a
// slow vault that answers must not be cut off and sealed.
func (r *Reconciler) graceLeft(req Request) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, failing := r.unreachable[req.Key]; !failing {
		return 0
	}
	since := r.unconfirmedSinceLocked(req)
	return max(since.Add(r.cfg.UnreachableGrace).Sub(r.cfg.Now()), lastProbeFloor)
}

// confirm records that a probe begun at "at" learnt key's state.
func (r *Reconciler) confirm(key cmkd.KeyID, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.unreachable, key)
	if at.After(r.confirmed[key]) {
		r.confirmed[key] = at
	}
}
