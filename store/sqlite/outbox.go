package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// appendOutbox writes events in the caller's transaction. An event id seen
// before is ignored: writing the same event twice publishes it once.
func appendOutbox(ctx context.Context, tx *sql.Tx, evs []cmkd.StatusEvent) error {
	if len(evs) == 0 {
		return nil
	}
	// One statement for all of them: sealing a key's tenants appends a
	// thousand events in one transaction, and their readers wait for its
	// commit.
	rows := make([]outboxRow, len(evs))
	for i, ev := range evs {
		data, err := ev.MarshalData()
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		rows[i] = outboxRow{ev.ID, ev.Tenant, string(ev.Kind), unixNano(ev.Time), string(data)}
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO outbox (id, tenant, kind, time, data)
		SELECT value ->> '$.id', value ->> '$.tenant', value ->> '$.kind', value ->> '$.time', value ->> '$.data'
		FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING`, string(doc))
	if err != nil {
		return fmt.Errorf("write %d events: %w", len(evs), err)
	}
	return nil
}

// outboxRow is one outbox row as appendOutbox's JSON array carries it.
type outboxRow struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Kind   string `json:"kind"`
	Time   int64  `json:"time"`
	Data   string `json:"data"`
}

// AppendOutbox implements store.Backend.
func (b *Backend) AppendOutbox(ctx context.Context, evs []cmkd.StatusEvent) error {
	return b.tx(ctx, func(tx *sql.Tx) error { return appendOutbox(ctx, tx, evs) })
}

// ClaimOutbox implements store.Backend.
// claimableSQL selects the unsent entries nobody holds a claim on whose
// tenant has no earlier unsent entry held by another claim: that holder
// may have died with it, and a tenant's events must reach the stream in
// write order. (Claims are transactions of their own, serialized by
// SQLite's write lock, so a claim sees every claim made before it.)
const claimableSQL = `SELECT o.seq FROM outbox o
	WHERE o.sent_at IS NULL AND o.claim_until <= ?3
	AND NOT EXISTS (SELECT 1 FROM outbox p INDEXED BY outbox_unsent
		WHERE p.sent_at IS NULL AND p.seq < o.seq AND p.tenant = o.tenant AND p.claim_until > ?3)`

func (b *Backend) ClaimOutbox(ctx context.Context, holder string, limit int, now time.Time, claim time.Duration) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	err := b.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET claimed_by = ?1, claim_until = ?2, attempts = attempts + 1
			WHERE seq IN (`+claimableSQL+` ORDER BY o.seq LIMIT ?4)
			RETURNING seq, id, tenant, kind, time, data, attempts`,
			holder, unixNano(now.Add(claim)), unixNano(now), limit)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		defer rows.Close()
		out, err = scanOutbox(rows)
		return err
	})
	return out, err
}

func scanOutbox(rows *sql.Rows) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	for rows.Next() {
		var e store.OutboxEntry
		var t int64
		var data string
		if err := rows.Scan(&e.Seq, &e.Event.ID, &e.Event.Tenant, &e.Event.Kind, &t, &data, &e.Attempts); err != nil {
			return nil, fmt.Errorf("claim outbox: %w", err)
		}
		e.Event.Time = fromNano(t)
		if err := e.Event.UnmarshalData([]byte(data)); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", e.Event.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	// RETURNING gives no order guarantee; the relay needs write order.
	sortBySeq(out)
	return out, nil
}

func sortBySeq(es []store.OutboxEntry) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Seq < es[j-1].Seq; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// MarkSent implements store.Backend.
func (b *Backend) MarkSent(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, unixNano(time.Now()))
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := b.db.ExecContext(ctx, `UPDATE outbox SET sent_at = ? WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...) // #nosec G202 -- only placeholders are concatenated; the ids are bound
	if err != nil {
		return fmt.Errorf("mark sent: %w", err)
	}
	return nil
}
