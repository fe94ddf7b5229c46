package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// lockTenant reads a tenant and locks its row against seals, DEK inserts
// and other key changes until the transaction ends.
func lockTenant(ctx context.Context, tx pgx.Tx, id string) (store.Tenant, error) {
	t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t, tenantNotFound(id)
	case err != nil:
		return t, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// ChangeKey implements store.Backend.
func (b *Backend) ChangeKey(ctx context.Context, tenant string, from cmkd.KeyID, fromVersion string, to cmkd.KeyID, since time.Time, ev cmkd.StatusEvent) error {
	o, err := outboxArgs([]cmkd.StatusEvent{ev})
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		t, err := lockTenant(ctx, tx, tenant)
		switch {
		case err != nil:
			return err
		case t.Change != nil:
			return store.ErrChangeInProgress
		case t.Key != from:
			return store.ErrCASConflict
		}
		_, err = tx.Exec(ctx, `UPDATE tenants SET key_url = $2, key_version = '', change_from = $3,
			change_from_version = $4, change_since = $5 WHERE id = $1`,
			tenant, store.StoredKey(to), store.StoredKey(from), fromVersion, nanos(since))
		if err != nil {
			return fmt.Errorf("change key: %w", err)
		}
		if _, err := tx.Exec(ctx, appendOutboxSQL, o...); err != nil {
			return fmt.Errorf("append outbox: %w", err)
		}
		return nil
	})
}

// ReplaceLayers implements store.Backend.
func (b *Backend) ReplaceLayers(ctx context.Context, id string, expect []cmkd.KeyID, layers []store.DEK) error {
	want := make([]string, len(expect))
	for i, k := range expect {
		want[i] = k.String()
	}
	slices.Sort(want)
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT kid FROM dek_wrappings WHERE dek_id = $1 ORDER BY kid COLLATE "C" FOR UPDATE`, id)
		if err != nil {
			return fmt.Errorf("read layers: %w", err)
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read layers: %w", err)
		}
		if len(have) == 0 {
			return fmt.Errorf("dek %s: %w", id, store.ErrNotFound)
		}
		if !slices.Equal(have, want) {
			return store.ErrCASConflict
		}
		batch := &pgx.Batch{}
		batch.Queue(`DELETE FROM dek_wrappings WHERE dek_id = $1`, id)
		queueLayers(batch, layers)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("replace layers: %w", err)
		}
		return nil
	})
}

// misplacedSQL counts a tenant's DEKs, not set aside, whose layers are not
// exactly the tenant's ($2 customer key, $3 platform key, ” for none).
const misplacedSQL = `SELECT count(*) FROM deks d WHERE d.tenant = $1
	AND NOT EXISTS (SELECT FROM dek_wrappings u WHERE u.dek_id = d.id AND u.unreadable)
	AND (EXISTS (SELECT FROM dek_wrappings w WHERE w.dek_id = d.id
			AND NOT ((w.layer = 'customer' AND w.key_url = $2) OR (w.layer = 'platform' AND w.key_url = $3)))
		OR ($2 <> '' AND NOT EXISTS (SELECT FROM dek_wrappings w WHERE w.dek_id = d.id AND w.layer = 'customer'))
		OR ($3 <> '' AND NOT EXISTS (SELECT FROM dek_wrappings w WHERE w.dek_id = d.id AND w.layer = 'platform')))`

// CompleteKeyChange implements store.Backend.
func (b *Backend) CompleteKeyChange(ctx context.Context, tenant string, key cmkd.KeyID, evs []cmkd.StatusEvent) (bool, error) {
	o, err := outboxArgs(evs)
	if err != nil {
		return false, err
	}
	done := false
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		t, err := lockTenant(ctx, tx, tenant)
		switch {
		case err != nil:
			return err
		case t.Change == nil:
			return nil
		case t.Key != key:
			return store.ErrCASConflict
		}
		var left int64
		if err := tx.QueryRow(ctx, misplacedSQL, tenant, store.StoredKey(t.Key), store.StoredKey(t.PlatformKey)).Scan(&left); err != nil {
			return fmt.Errorf("count deks: %w", err)
		}
		if left > 0 {
			return fmt.Errorf("%w: %d deks of %s not in its layers", store.ErrRewrapIncomplete, left, tenant)
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET change_from = NULL, change_from_version = '', change_since = NULL
			WHERE id = $1`, tenant); err != nil {
			return fmt.Errorf("complete key change: %w", err)
		}
		if _, err := tx.Exec(ctx, appendOutboxSQL, o...); err != nil {
			return fmt.Errorf("append outbox: %w", err)
		}
		done = true
		return nil
	})
	return done, err
}
