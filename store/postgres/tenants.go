package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/failpoint"
	"github.com/cmkd-io/cmkd/store"
)

const tenantCols = `id, key_url, key_version, state, seal_reason, sealed_at, created_at,
	platform_key_url, platform_key_version, change_from, change_from_version, change_since`

func scanTenant(r pgx.Row) (store.Tenant, error) {
	var t store.Tenant
	var sealed, created, since *int64
	var key, platform, fromVersion string
	var from *string
	if err := r.Scan(&t.ID, &key, &t.KeyVersion, &t.State, &t.SealReason, &sealed, &created,
		&platform, &t.PlatformKeyVersion, &from, &fromVersion, &since); err != nil {
		return t, err
	}
	t.SealedAt, t.CreatedAt = fromNanos(sealed), fromNanos(created)
	var err error
	if t.Key, err = store.ParseStoredKey(key); err != nil {
		return t, fmt.Errorf("tenant %s: stored key: %w", t.ID, err)
	}
	if t.PlatformKey, err = store.ParseStoredKey(platform); err != nil {
		return t, fmt.Errorf("tenant %s: stored platform key: %w", t.ID, err)
	}
	if from != nil {
		t.Change = &store.KeyChange{FromVersion: fromVersion, Since: fromNanos(since)}
		if t.Change.From, err = store.ParseStoredKey(*from); err != nil {
			return t, fmt.Errorf("tenant %s: stored key changed from: %w", t.ID, err)
		}
	}
	return t, nil
}

// stateRow is a tenant's state as the statements that check it return it:
// a row of state, seal_reason, sealed_at.
type stateRow struct {
	state, reason string
	sealedAt      *int64
}

func (s *stateRow) dest() []any { return []any{&s.state, &s.reason, &s.sealedAt} }

// err is the *store.SealedError of a sealed tenant, nil for an active one.
func (s *stateRow) err(tenant string) error {
	if s.state == store.StateSealed {
		return &store.SealedError{Tenant: tenant, Reason: s.reason, Since: fromNanos(s.sealedAt)}
	}
	return nil
}

func tenantNotFound(id string) error { return fmt.Errorf("tenant %s: %w", id, store.ErrUnknownTenant) }

// AddTenant implements store.Backend.
func (b *Backend) AddTenant(ctx context.Context, t store.Tenant) error {
	tag, err := b.pool.Exec(ctx, `INSERT INTO tenants (id, key_url, key_version, state, seal_reason, sealed_at,
			created_at, platform_key_url, platform_key_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO NOTHING`,
		t.ID, store.StoredKey(t.Key), t.KeyVersion, t.State, t.SealReason, nanos(t.SealedAt), nanos(t.CreatedAt),
		store.StoredKey(t.PlatformKey), t.PlatformKeyVersion)
	if err != nil {
		return fmt.Errorf("insert tenant: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return nil
}

// GetTenant implements store.Backend.
func (b *Backend) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(b.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Tenant{}, tenantNotFound(id)
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// ListTenants implements store.Backend.
func (b *Backend) ListTenants(ctx context.Context, key cmkd.KeyID) ([]store.Tenant, error) {
	var rows pgx.Rows
	var err error
	if key.IsZero() {
		rows, err = b.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	} else {
		rows, err = b.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants
			WHERE key_url = $1 OR platform_key_url = $1 OR change_from = $1 ORDER BY id`, key.URL())
	}
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// RemoveTenant implements store.Backend. It locks the tenant's row first,
// exclusively: puts in flight (which share-lock it) finish before the
// count, and puts that start after wait and then find no tenant, so a
// removal without force never deletes a record it did not count.
func (b *Backend) RemoveTenant(ctx context.Context, id string, force bool) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := lockTenantForRemoval(ctx, tx, id); err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM records WHERE tenant = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("count records: %w", err)
		}
		if n > 0 && !force {
			return fmt.Errorf("%w: %d records", store.ErrNotEmpty, n)
		}
		return deleteTenant(ctx, tx, id)
	})
}

// lockTenantForRemoval takes the tenant's row exclusively: writes in
// flight (which share-lock it) finish first, and those that start after
// wait and then find no tenant.
func lockTenantForRemoval(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenantNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("lock tenant: %w", err)
	}
	return nil
}

// deleteTenant deletes a tenant with its records and DEKs, in tx: what
// RemoveTenant and DestroyTenant share.
func deleteTenant(ctx context.Context, tx pgx.Tx, id string) error {
	for _, q := range []string{
		`DELETE FROM records WHERE tenant = $1`,
		`DELETE FROM dek_wrappings WHERE tenant = $1`,
		`DELETE FROM deks WHERE tenant = $1`,
		`DELETE FROM tenants WHERE id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, id); err != nil {
			return fmt.Errorf("delete tenant: %w", err)
		}
	}
	return nil
}

// setStateSQL changes a tenant's state and writes the event only if it
// changed, in one statement. The update's row lock waits for writes in
// flight (see the package comment) and orders the event after any earlier
// state change's. The second column tells "already in that state" from
// "no such tenant".
var setStateSQL = `WITH u AS (
		UPDATE tenants SET state = $2, seal_reason = $3, sealed_at = $4
		WHERE id = $1 AND state <> $2
		RETURNING id
	), o AS (` + insertOutbox(5, `WHERE EXISTS (SELECT FROM u)`) + `)
	SELECT EXISTS (SELECT FROM u), EXISTS (SELECT FROM tenants WHERE id = $1)`

// SetTenantState implements store.Backend.
func (b *Backend) SetTenantState(ctx context.Context, id, state, reason string, since time.Time, ev cmkd.StatusEvent) (bool, error) {
	var sealedAt *int64
	if state == store.StateActive {
		reason = ""
	} else {
		sealedAt = nanos(since)
	}
	o, err := outboxArgs([]cmkd.StatusEvent{ev})
	if err != nil {
		return false, err
	}
	var changed, exists bool
	err = b.pool.QueryRow(ctx, setStateSQL, append([]any{id, state, reason, sealedAt}, o...)...).Scan(&changed, &exists)
	switch {
	case err != nil:
		return false, fmt.Errorf("set state: %w", err)
	case !changed && !exists:
		return false, tenantNotFound(id)
	}
	return changed, nil
}

// sealTenantsSQL seals the tenants named and writes the events of those it
// changed, in one statement. It locks the tenants' rows in id order, so
// that two seals of overlapping sets (two replicas reacting to one key's
// disablement) queue rather than deadlock; a tenant another seal changed
// meanwhile is re-read under the lock and left alone.
var sealTenantsSQL = `WITH l AS (
		SELECT id FROM tenants WHERE id = ANY ($1::text[]) AND state <> 'sealed'
		ORDER BY id FOR NO KEY UPDATE
	), s AS (
		UPDATE tenants t SET state = 'sealed', seal_reason = $2, sealed_at = $3
		FROM l WHERE t.id = l.id
		RETURNING t.id
	), o AS (` + insertOutbox(4, `JOIN s ON s.id = e.tenant`) + `)
	SELECT id FROM s ORDER BY id`

// SealTenants implements store.Backend. However many tenants, it is one
// statement: the readers of those tenants keep reading until it commits.
func (b *Backend) SealTenants(ctx context.Context, reason string, since time.Time, evs []cmkd.StatusEvent) ([]string, error) {
	// One event per tenant, the last one given, as a tenant changes once.
	ids := make([]string, 0, len(evs))
	last := make(map[string]int, len(evs))
	for i, ev := range evs {
		if _, ok := last[ev.Tenant]; !ok {
			ids = append(ids, ev.Tenant)
		}
		last[ev.Tenant] = i
	}
	one := make([]cmkd.StatusEvent, 0, len(ids))
	for _, id := range ids {
		one = append(one, evs[last[id]])
	}
	o, err := outboxArgs(one)
	if err != nil {
		return nil, err
	}
	failpoint.Hit(failpoint.SealTx) // one statement: the kill comes before it commits
	rows, err := b.pool.Query(ctx, sealTenantsSQL, append([]any{ids, reason, nanos(since)}, o...)...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return changed, nil
}
