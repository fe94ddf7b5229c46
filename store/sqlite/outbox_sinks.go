package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// registerSinkSQL registers a sink at its first claim, starting after the
// last entry written. It runs in the claim's write transaction: SQLite
// serializes writers, so every entry is either committed before it (and
// below start_seq) or written after it, when the outbox_fan_out trigger
// gives it the sink's delivery row.
const registerSinkSQL = `INSERT INTO outbox_sinks (name, start_seq, created_at)
	SELECT ?1, coalesce(max(seq), 0), ?2 FROM outbox WHERE true
	ON CONFLICT (name) DO NOTHING`

// claimForSQL is claimableSQL over a sink's delivery rows: its unsent
// entries nobody holds whose tenant has no earlier unsent entry held by
// another claim of the sink. ?1 holder, ?2 claim end, ?3 now, ?4 limit,
// ?5 sink.
const claimForSQL = `UPDATE outbox_delivery SET claimed_by = ?1, claim_until = ?2, attempts = attempts + 1
	WHERE sink = ?5 AND seq IN (SELECT d.seq FROM outbox_delivery d INDEXED BY outbox_delivery_unsent
		WHERE d.sink = ?5 AND d.sent_at IS NULL AND d.claim_until <= ?3
		AND NOT EXISTS (SELECT 1 FROM outbox_delivery p INDEXED BY outbox_delivery_tenant
			WHERE p.sink = ?5 AND p.tenant = d.tenant AND p.sent_at IS NULL AND p.seq < d.seq AND p.claim_until > ?3)
		ORDER BY d.seq LIMIT ?4)
	RETURNING seq, attempts`

// ClaimOutboxFor implements store.Backend.
func (b *Backend) ClaimOutboxFor(ctx context.Context, sink, holder string, limit int, now time.Time, claim time.Duration) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	err := b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, registerSinkSQL, sink, unixNano(now)); err != nil {
			return fmt.Errorf("register sink %s: %w", sink, err)
		}
		attempts, err := claimFor(ctx, tx, sink, holder, limit, now, claim)
		if err != nil || len(attempts) == 0 {
			return err
		}
		out, err = outboxEntries(ctx, tx, attempts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox for %s: %w", sink, err)
	}
	return out, nil
}

// claimFor claims the sink's entries and returns their attempts by seq.
func claimFor(ctx context.Context, tx *sql.Tx, sink, holder string, limit int, now time.Time, claim time.Duration) (map[int64]int, error) {
	rows, err := tx.QueryContext(ctx, claimForSQL, holder, unixNano(now.Add(claim)), unixNano(now), limit, sink)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	attempts := map[int64]int{}
	for rows.Next() {
		var seq int64
		var n int
		if err := rows.Scan(&seq, &n); err != nil {
			return nil, err
		}
		attempts[seq] = n
	}
	return attempts, rows.Err()
}

// outboxEntries reads the entries of the claimed seqs, in seq order, with
// the sink's attempts.
func outboxEntries(ctx context.Context, tx *sql.Tx, attempts map[int64]int) ([]store.OutboxEntry, error) {
	args := make([]any, 0, len(attempts))
	for seq := range attempts {
		args = append(args, seq)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, id, tenant, kind, time, data, 0 FROM outbox
		WHERE seq IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...) // #nosec G202 -- only placeholders are concatenated; the seqs are bound
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out, err := scanOutbox(rows)
	for i := range out {
		out[i].Attempts = attempts[out[i].Seq]
	}
	return out, err
}

// MarkSentFor implements store.Backend.
func (b *Backend) MarkSentFor(ctx context.Context, sink string, ids []string, now time.Time, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+3)
	args = append(args, unixNano(now), reason, sink)
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := b.db.ExecContext(ctx, `UPDATE outbox_delivery SET sent_at = ?, gave_up = ?
		WHERE sink = ? AND sent_at IS NULL AND seq IN (SELECT seq FROM outbox WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`))`, args...) // #nosec G202 -- only placeholders are concatenated; the ids are bound
	if err != nil {
		return fmt.Errorf("mark sent for %s: %w", sink, err)
	}
	return nil
}

// OutboxPending implements store.Backend.
func (b *Backend) OutboxPending(ctx context.Context, sink string) (int64, error) {
	q, args := `SELECT count(*) FROM outbox_delivery WHERE sink = ? AND sent_at IS NULL`, []any{sink}
	if sink == store.NATSSink {
		q, args = `SELECT count(*) FROM outbox WHERE sent_at IS NULL`, nil
	}
	var n int64
	if err := b.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox pending for %s: %w", sink, err)
	}
	return n, nil
}
