package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// ChangeKey implements store.Backend.
func (b *Backend) ChangeKey(ctx context.Context, tenant string, from cmkd.KeyID, fromVersion string, to cmkd.KeyID, since time.Time, ev cmkd.StatusEvent) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, tenant))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("tenant %s: %w", tenant, store.ErrUnknownTenant)
		case err != nil:
			return fmt.Errorf("read tenant: %w", err)
		case t.Change != nil:
			return store.ErrChangeInProgress
		case t.Key != from:
			return store.ErrCASConflict
		}
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET key_url = ?, key_version = '', change_from = ?,
			change_from_version = ?, change_since = ? WHERE id = ?`,
			store.StoredKey(to), store.StoredKey(from), fromVersion, unixNano(since), tenant)
		if err != nil {
			return fmt.Errorf("change key: %w", err)
		}
		return appendOutbox(ctx, tx, []cmkd.StatusEvent{ev})
	})
}

// ReplaceLayers implements store.Backend.
func (b *Backend) ReplaceLayers(ctx context.Context, id string, expect []cmkd.KeyID, layers []store.DEK) error {
	want := make([]string, len(expect))
	for i, k := range expect {
		want[i] = k.String()
	}
	slices.Sort(want)
	return b.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT kid FROM dek_wrappings WHERE dek_id = ? ORDER BY kid`, id)
		if err != nil {
			return fmt.Errorf("read layers: %w", err)
		}
		have, err := scanStrings(rows)
		if err != nil {
			return fmt.Errorf("read layers: %w", err)
		}
		if len(have) == 0 {
			return fmt.Errorf("dek %s: %w", id, store.ErrNotFound)
		}
		if !slices.Equal(have, want) {
			return store.ErrCASConflict
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM dek_wrappings WHERE dek_id = ?`, id); err != nil {
			return fmt.Errorf("replace layers: %w", err)
		}
		return insertLayers(ctx, tx, layers)
	})
}

// misplacedSQL counts a tenant's DEKs, not set aside, whose layers are not
// exactly the tenant's (?2 customer key, ?3 platform key, "" for none).
const misplacedSQL = `SELECT count(*) FROM deks d WHERE d.tenant = ?1
	AND NOT EXISTS (SELECT 1 FROM dek_wrappings u WHERE u.dek_id = d.id AND u.unreadable = 1)
	AND (EXISTS (SELECT 1 FROM dek_wrappings w WHERE w.dek_id = d.id
			AND NOT ((w.layer = 'customer' AND w.key_url = ?2) OR (w.layer = 'platform' AND w.key_url = ?3)))
		OR (?2 <> '' AND NOT EXISTS (SELECT 1 FROM dek_wrappings w WHERE w.dek_id = d.id AND w.layer = 'customer'))
		OR (?3 <> '' AND NOT EXISTS (SELECT 1 FROM dek_wrappings w WHERE w.dek_id = d.id AND w.layer = 'platform')))`

// CompleteKeyChange implements store.Backend.
func (b *Backend) CompleteKeyChange(ctx context.Context, tenant string, key cmkd.KeyID, evs []cmkd.StatusEvent) (bool, error) {
	done := false
	err := b.tx(ctx, func(tx *sql.Tx) error {
		t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, tenant))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("tenant %s: %w", tenant, store.ErrUnknownTenant)
		case err != nil:
			return fmt.Errorf("read tenant: %w", err)
		case t.Change == nil:
			return nil
		case t.Key != key:
			return store.ErrCASConflict
		}
		var left int
		if err := tx.QueryRowContext(ctx, misplacedSQL, tenant, store.StoredKey(t.Key), store.StoredKey(t.PlatformKey)).Scan(&left); err != nil {
			return fmt.Errorf("count deks: %w", err)
		}
		if left > 0 {
			return fmt.Errorf("%w: %d deks of %s not in its layers", store.ErrRewrapIncomplete, left, tenant)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET change_from = NULL, change_from_version = '', change_since = 0
			WHERE id = ?`, tenant); err != nil {
			return fmt.Errorf("complete key change: %w", err)
		}
		done = true
		return appendOutbox(ctx, tx, evs)
	})
	return done, err
}
