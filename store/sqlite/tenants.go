package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/failpoint"
	"github.com/cmkd-io/cmkd/store"
)

const tenantCols = `id, key_url, key_version, state, seal_reason, sealed_at, created_at,
	platform_key_url, platform_key_version, change_from, change_from_version, change_since`

type rowScanner interface{ Scan(...any) error }

func scanTenant(r rowScanner) (store.Tenant, error) {
	var t store.Tenant
	var sealed, created, since int64
	var key, platform, fromVersion string
	var from sql.NullString
	if err := r.Scan(&t.ID, &key, &t.KeyVersion, &t.State, &t.SealReason, &sealed, &created,
		&platform, &t.PlatformKeyVersion, &from, &fromVersion, &since); err != nil {
		return t, err
	}
	t.SealedAt, t.CreatedAt = fromNano(sealed), fromNano(created)
	var err error
	if t.Key, err = store.ParseStoredKey(key); err != nil {
		return t, fmt.Errorf("tenant %s: stored key: %w", t.ID, err)
	}
	if t.PlatformKey, err = store.ParseStoredKey(platform); err != nil {
		return t, fmt.Errorf("tenant %s: stored platform key: %w", t.ID, err)
	}
	if from.Valid {
		t.Change = &store.KeyChange{FromVersion: fromVersion, Since: fromNano(since)}
		if t.Change.From, err = store.ParseStoredKey(from.String); err != nil {
			return t, fmt.Errorf("tenant %s: stored key changed from: %w", t.ID, err)
		}
	}
	return t, nil
}

// AddTenant implements store.Backend.
func (b *Backend) AddTenant(ctx context.Context, t store.Tenant) error {
	res, err := b.db.ExecContext(ctx, `INSERT INTO tenants (id, key_url, key_version, state, seal_reason, sealed_at,
			created_at, platform_key_url, platform_key_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		t.ID, store.StoredKey(t.Key), t.KeyVersion, t.State, t.SealReason, unixNano(t.SealedAt), unixNano(t.CreatedAt),
		store.StoredKey(t.PlatformKey), t.PlatformKeyVersion)
	if err != nil {
		return fmt.Errorf("insert tenant: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrExists
	}
	return nil
}

// GetTenant implements store.Backend.
func (b *Backend) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(b.db.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Tenant{}, fmt.Errorf("tenant %s: %w", id, store.ErrUnknownTenant)
	}
	return t, err
}

// Two statements, not one that tests for an empty key in SQL: SQLite plans that
// as a scan of every tenant, and the scheduler lists a key's tenants on
// every event and check.
const (
	listTenantsSQL      = `SELECT ` + tenantCols + ` FROM tenants ORDER BY id`
	listTenantsByKeySQL = `SELECT ` + tenantCols + ` FROM tenants
		WHERE key_url = ?1 OR platform_key_url = ?1 OR change_from = ?1 ORDER BY id`
)

// ListTenants implements store.Backend.
func (b *Backend) ListTenants(ctx context.Context, key cmkd.KeyID) ([]store.Tenant, error) {
	query, args := listTenantsSQL, []any{}
	if !key.IsZero() {
		query, args = listTenantsByKeySQL, []any{key.URL()}
	}
	rows, err := b.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RemoveTenant implements store.Backend.
func (b *Backend) RemoveTenant(ctx context.Context, id string, force bool) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE tenant = ?`, id).Scan(&n); err != nil {
			return fmt.Errorf("count records: %w", err)
		}
		if n > 0 && !force {
			return fmt.Errorf("%w: %d records", store.ErrNotEmpty, n)
		}
		return deleteTenant(ctx, tx, id)
	})
}

// deleteTenant deletes a tenant with its records and DEKs, in tx: what
// RemoveTenant and DestroyTenant share.
func deleteTenant(ctx context.Context, tx *sql.Tx, id string) error {
	for _, q := range []string{
		`DELETE FROM records WHERE tenant = ?`,
		`DELETE FROM dek_wrappings WHERE tenant = ?`,
		`DELETE FROM deks WHERE tenant = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("delete tenant: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete tenant: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("tenant %s: %w", id, store.ErrUnknownTenant)
	}
	return nil
}

// SetTenantState implements store.Backend.
func (b *Backend) SetTenantState(ctx context.Context, id, state, reason string, since time.Time, ev cmkd.StatusEvent) (bool, error) {
	changed := false
	err := b.tx(ctx, func(tx *sql.Tx) error {
		var sealedAt int64
		if state == store.StateActive {
			reason, sealedAt = "", 0
		} else {
			sealedAt = unixNano(since)
		}
		res, err := tx.ExecContext(ctx, `UPDATE tenants SET state = ?, seal_reason = ?, sealed_at = ?
			WHERE id = ? AND state <> ?`, state, reason, sealedAt, id, state)
		if err != nil {
			return fmt.Errorf("set state: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := tenantState(ctx, tx, id); errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil // already in that state
		}
		changed = true
		return appendOutbox(ctx, tx, []cmkd.StatusEvent{ev})
	})
	return changed, err
}

// SealTenants implements store.Backend. However many tenants, it is two
// statements — the state change and the outbox rows, each driven by a JSON
// array — because every reader of those tenants keeps reading until the
// commit, and on a busy machine each statement's overhead is multiplied by
// the goroutines competing for the CPU.
func (b *Backend) SealTenants(ctx context.Context, reason string, since time.Time, evs []cmkd.StatusEvent) ([]string, error) {
	ids := make([]string, len(evs))
	byID := make(map[string]cmkd.StatusEvent, len(evs))
	for i, ev := range evs {
		ids[i], byID[ev.Tenant] = ev.Tenant, ev
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var changed []string
	err = b.tx(ctx, func(tx *sql.Tx) error {
		changed = changed[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE tenants SET state = 'sealed', seal_reason = ?, sealed_at = ?
			WHERE state <> 'sealed' AND id IN (SELECT value FROM json_each(?)) RETURNING id`,
			reason, unixNano(since), string(idsJSON))
		if err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		if changed, err = scanStrings(rows); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		out := make([]cmkd.StatusEvent, 0, len(changed))
		for _, id := range changed {
			out = append(out, byID[id])
		}
		if err := appendOutbox(ctx, tx, out); err != nil {
			return err
		}
		failpoint.Hit(failpoint.SealTx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(changed)
	return changed, nil
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// tenantState reads a tenant's state inside a transaction: ErrNotFound, a
// *store.SealedError, or nil for an active tenant.
func tenantState(ctx context.Context, q querier, id string) (store.Tenant, error) {
	t, err := scanTenant(q.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return t, fmt.Errorf("tenant %s: %w", id, store.ErrUnknownTenant)
	case err != nil:
		return t, fmt.Errorf("tenant state: %w", err)
	case t.Sealed():
		return t, t.SealedError()
	}
	return t, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
