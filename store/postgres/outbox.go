package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// insertOutbox is the INSERT that writes events passed as the five arrays
// of outboxArgs, as parameters $p to $p+4, in their order; tail joins or
// filters them (the statements that write events only for what they
// changed). An event id written before is left alone: writing the same
// event twice publishes it once.
func insertOutbox(p int, tail string) string {
	return fmt.Sprintf(`INSERT INTO outbox (id, tenant, kind, event_time, data)
		SELECT e.id, e.tenant, e.kind, e.event_time, e.data::json
		FROM unnest($%d::text[], $%d::text[], $%d::text[], $%d::bigint[], $%d::text[])
			WITH ORDINALITY AS e (id, tenant, kind, event_time, data, ord)
		%s
		ORDER BY e.ord
		ON CONFLICT (id) DO NOTHING`, p, p+1, p+2, p+3, p+4, tail)
}

// outboxArgs are events as insertOutbox's arrays: one statement writes a
// thousand events as fast as one.
func outboxArgs(evs []cmkd.StatusEvent) ([]any, error) {
	ids := make([]string, len(evs))
	tenants := make([]string, len(evs))
	kinds := make([]string, len(evs))
	times := make([]*int64, len(evs))
	data := make([]string, len(evs))
	for i, ev := range evs {
		d, err := ev.MarshalData()
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		ids[i], tenants[i], kinds[i], times[i], data[i] = ev.ID, ev.Tenant, string(ev.Kind), nanos(ev.Time), string(d)
	}
	return []any{ids, tenants, kinds, times, data}, nil
}

var appendOutboxSQL = insertOutbox(1, "")

// AppendOutbox implements store.Backend.
func (b *Backend) AppendOutbox(ctx context.Context, evs []cmkd.StatusEvent) error {
	if len(evs) == 0 {
		return nil
	}
	args, err := outboxArgs(evs)
	if err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, appendOutboxSQL, args...); err != nil {
		return fmt.Errorf("write %d events: %w", len(evs), err)
	}
	return nil
}

// claimSQL claims the oldest unsent entries nobody holds a claim on whose
// tenant has no earlier unsent entry held by another claim: that holder
// may have died with it, and a tenant's events must reach the stream in
// write order. It runs after claimLockSQL, in its transaction: claims are
// serialized, so each sees the claims committed before it (with SKIP
// LOCKED, a claim could pass a tenant's entry another was claiming).
const claimSQL = `WITH c AS (
		SELECT o.seq FROM outbox o WHERE o.sent_at IS NULL AND o.claim_until <= $3
		AND NOT EXISTS (SELECT 1 FROM outbox p
			WHERE p.sent_at IS NULL AND p.seq < o.seq AND p.tenant = o.tenant AND p.claim_until > $3)
		ORDER BY o.seq LIMIT $4
		FOR UPDATE
	)
	UPDATE outbox o SET claimed_by = $1, claim_until = $2, attempts = o.attempts + 1
	FROM c WHERE o.seq = c.seq
	RETURNING o.seq, o.id, o.tenant, o.kind, o.event_time, o.data, o.attempts`

// claimLockSQL serializes the claims of one schema's relays.
const claimLockSQL = `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.outbox_claim'))`

// ClaimOutbox implements store.Backend.
func (b *Backend) ClaimOutbox(ctx context.Context, holder string, limit int, now time.Time, claim time.Duration) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, claimLockSQL); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, claimSQL, holder, now.Add(claim).UnixNano(), now.UnixNano(), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanOutboxEntry)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	// RETURNING has no order; the relay needs write order.
	slices.SortFunc(out, func(a, b store.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

func scanOutboxEntry(r pgx.CollectableRow) (store.OutboxEntry, error) {
	var e store.OutboxEntry
	var t *int64
	var data []byte
	if err := r.Scan(&e.Seq, &e.Event.ID, &e.Event.Tenant, &e.Event.Kind, &t, &data, &e.Attempts); err != nil {
		return e, err
	}
	e.Event.Time = fromNanos(t)
	if err := e.Event.UnmarshalData(data); err != nil {
		return e, fmt.Errorf("decode event %s: %w", e.Event.ID, err)
	}
	return e, nil
}

// MarkSent implements store.Backend.
func (b *Backend) MarkSent(ctx context.Context, ids []string) error {
	_, err := b.pool.Exec(ctx, `UPDATE outbox SET sent_at = $1 WHERE id = ANY ($2::text[]) AND sent_at IS NULL`,
		time.Now().UnixNano(), ids)
	if err != nil {
		return fmt.Errorf("mark sent: %w", err)
	}
	return nil
}
