package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/store"
)

// claimForSQL is claimSQL over a sink's delivery rows: the sink's oldest
// unsent entries nobody holds whose tenant has no earlier unsent entry
// held by another claim of the sink. It runs after claimForLockSQL, in its
// transaction, for the reason claimSQL does: SKIP LOCKED would let a claim
// pass a tenant's entry another claim is taking. $1 holder, $2 claim end,
// $3 now, $4 limit, $5 sink.
const claimForSQL = `WITH c AS (
		SELECT d.seq FROM outbox_delivery d
		WHERE d.sink = $5 AND d.sent_at IS NULL AND d.claim_until <= $3
		AND NOT EXISTS (SELECT 1 FROM outbox_delivery p
			WHERE p.sink = $5 AND p.tenant = d.tenant AND p.sent_at IS NULL AND p.seq < d.seq AND p.claim_until > $3)
		ORDER BY d.seq LIMIT $4
		FOR UPDATE
	), u AS (
		UPDATE outbox_delivery d SET claimed_by = $1, claim_until = $2, attempts = d.attempts + 1
		FROM c WHERE d.sink = $5 AND d.seq = c.seq
		RETURNING d.seq, d.attempts
	)
	SELECT o.seq, o.id, o.tenant, o.kind, o.event_time, o.data, u.attempts
	FROM u JOIN outbox o ON o.seq = u.seq`

// claimForLockSQL serializes the claims of one sink in one schema; the
// sinks do not wait for each other. It also reports whether the sink is
// registered.
const claimForLockSQL = `SELECT EXISTS (SELECT FROM outbox_sinks WHERE name = $1)
	FROM pg_advisory_xact_lock(hashtext(current_schema() || '.outbox_claim.' || $1))`

// registerSinkSQL registers a sink, starting after the last entry
// written. It runs after registerLockSQL, in its transaction.
const registerSinkSQL = `INSERT INTO outbox_sinks (name, start_seq, created_at)
	SELECT $1, coalesce(max(seq), 0), $2 FROM outbox
	ON CONFLICT (name) DO NOTHING`

// registerLockSQL waits for every transaction that wrote to the outbox to
// end, and holds new writers back until the registration commits. Without
// it, an entry whose statement ran (its trigger finding no such sink yet)
// before the registration but committed after it would be below neither
// start_seq nor in the sink's delivery rows: never delivered. Writers wait
// at most registerLockTimeout, once per sink: were the lock not granted by
// then (a long transaction), the registration fails, releasing them, and
// the next claim tries again. The timeout is shorter than PostgreSQL's
// deadlock_timeout, so that a writer that waits for this and holds what an
// older writer waits for costs a retried registration, not a failed write.
const registerLockSQL = `LOCK TABLE outbox IN SHARE MODE`

const registerLockTimeout = `SET LOCAL lock_timeout = '500ms'`

// ClaimOutboxFor implements store.Backend.
func (b *Backend) ClaimOutboxFor(ctx context.Context, sink, holder string, limit int, now time.Time, claim time.Duration) ([]store.OutboxEntry, error) {
	out, registered, err := b.claimFor(ctx, sink, holder, limit, now, claim)
	if err == nil && !registered {
		if err = b.registerSink(ctx, sink, now); err == nil {
			out, _, err = b.claimFor(ctx, sink, holder, limit, now, claim)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("claim outbox for %s: %w", sink, err)
	}
	// RETURNING has no order; the relay needs write order.
	slices.SortFunc(out, func(a, b store.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// claimFor claims the entries of a registered sink; it claims nothing, and
// reports false, if the sink is not registered.
func (b *Backend) claimFor(ctx context.Context, sink, holder string, limit int, now time.Time, claim time.Duration) ([]store.OutboxEntry, bool, error) {
	var out []store.OutboxEntry
	var registered bool
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, claimForLockSQL, sink).Scan(&registered); err != nil || !registered {
			return err
		}
		rows, err := tx.Query(ctx, claimForSQL, holder, now.Add(claim).UnixNano(), now.UnixNano(), limit, sink)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanOutboxEntry)
		return err
	})
	return out, registered, err
}

func (b *Backend) registerSink(ctx context.Context, sink string, now time.Time) error {
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		for _, q := range []string{registerLockTimeout, registerLockSQL} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, registerSinkSQL, sink, now.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("register sink: %w", err)
	}
	return nil
}

// MarkSentFor implements store.Backend.
func (b *Backend) MarkSentFor(ctx context.Context, sink string, ids []string, now time.Time, reason string) error {
	_, err := b.pool.Exec(ctx, `UPDATE outbox_delivery d SET sent_at = $1, gave_up = $2
		FROM outbox o WHERE o.id = ANY ($4::text[]) AND d.sink = $3 AND d.seq = o.seq AND d.sent_at IS NULL`,
		now.UnixNano(), reason, sink, ids)
	if err != nil {
		return fmt.Errorf("mark sent for %s: %w", sink, err)
	}
	return nil
}

// OutboxPending implements store.Backend.
func (b *Backend) OutboxPending(ctx context.Context, sink string) (int64, error) {
	q, args := `SELECT count(*) FROM outbox_delivery WHERE sink = $1 AND sent_at IS NULL`, []any{sink}
	if sink == store.NATSSink {
		q, args = `SELECT count(*) FROM outbox WHERE sent_at IS NULL`, nil
	}
	var n int64
	if err := b.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox pending for %s: %w", sink, err)
	}
	return n, nil
}
