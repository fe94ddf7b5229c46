package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

const dekCols = `d.id, d.tenant, d.key_url, d.kid, d.alg, d.wrapped, d.prev_kid, d.prev_alg, d.prev_wrapped,
	d.kcv, d.active, d.created_at, d.uses`

// dekRow scans dekCols, which are NULL when a LEFT JOIN found no DEK.
type dekRow struct {
	id, tenant, keyURL, kid, alg, prevKID, prevAlg *string
	wrapped, prevWrapped, kcv                      []byte
	active                                         *bool
	created, uses                                  *int64
}

func (r *dekRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.keyURL, &r.kid, &r.alg, &r.wrapped, &r.prevKID, &r.prevAlg,
		&r.prevWrapped, &r.kcv, &r.active, &r.created, &r.uses}
}

// dek reads the row; the key ids it holds were written canonical, so one
// that does not parse is a damaged row.
func (r *dekRow) dek() (store.DEK, error) {
	d := store.DEK{
		ID: *r.id, Tenant: *r.tenant,
		Current:   cmkd.Wrapped{Alg: *r.alg, Value: r.wrapped},
		KCV:       r.kcv,
		Active:    *r.active,
		CreatedAt: fromNanos(r.created),
		Uses:      *r.uses,
	}
	var err error
	if d.Key, err = cmkd.ParseKeyID(*r.keyURL); err != nil {
		return d, fmt.Errorf("dek %s: stored key: %w", d.ID, err)
	}
	if d.Current.KID, err = cmkd.ParseKeyID(*r.kid); err != nil {
		return d, fmt.Errorf("dek %s: stored kid: %w", d.ID, err)
	}
	if r.prevKID != nil {
		d.Previous = &cmkd.Wrapped{Alg: *r.prevAlg, Value: r.prevWrapped}
		if d.Previous.KID, err = cmkd.ParseKeyID(*r.prevKID); err != nil {
			return d, fmt.Errorf("dek %s: stored previous kid: %w", d.ID, err)
		}
	}
	return d, nil
}

// dekWithState reads one DEK of tenant, picked by on, and the tenant's
// state in one statement.
func (b *Backend) dekWithState(ctx context.Context, tenant, on string, args ...any) (store.DEK, error) {
	var st stateRow
	var d dekRow
	err := b.pool.QueryRow(ctx, `SELECT t.state, t.seal_reason, t.sealed_at, `+dekCols+`
		FROM tenants t LEFT JOIN deks d ON d.tenant = t.id AND `+on+` WHERE t.id = $1`,
		append([]any{tenant}, args...)...).Scan(append(st.dest(), d.dest()...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.DEK{}, tenantNotFound(tenant)
	case err != nil:
		return store.DEK{}, fmt.Errorf("read dek: %w", err)
	case st.err(tenant) != nil:
		return store.DEK{}, st.err(tenant)
	case d.id == nil:
		return store.DEK{}, fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return d.dek()
}

// ActiveDEK implements store.Backend.
func (b *Backend) ActiveDEK(ctx context.Context, tenant string) (store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.active`)
}

// GetDEK implements store.Backend.
func (b *Backend) GetDEK(ctx context.Context, tenant, id string) (store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.id = $2`, id)
}

// TenantDEKs implements store.Backend.
func (b *Backend) TenantDEKs(ctx context.Context, tenant string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM deks d WHERE d.tenant = $1
		ORDER BY d.active DESC, d.created_at DESC NULLS LAST, d.id LIMIT $2`, tenant, limit)
}

func (b *Backend) queryDEKs(ctx context.Context, sql string, args ...any) ([]store.DEK, error) {
	rows, err := b.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list deks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DEK, error) {
		var d dekRow
		if err := r.Scan(d.dest()...); err != nil {
			return store.DEK{}, err
		}
		return d.dek()
	})
	if err != nil {
		return nil, fmt.Errorf("list deks: %w", err)
	}
	return out, nil
}

// retireDEKSQL locks the tenant's row against every other write of its
// DEKs and records, and against seals, then retires its active DEK if it
// is active. The lock orders two processes making a DEK for one tenant, so
// the second retires the first's instead of colliding with it on
// deks_one_active.
const retireDEKSQL = `WITH t AS (
		SELECT state, seal_reason, sealed_at FROM tenants WHERE id = $1 FOR NO KEY UPDATE
	), off AS (
		UPDATE deks SET active = false
		WHERE tenant = $1 AND active AND EXISTS (SELECT FROM t WHERE state = 'active')
	)
	SELECT state, seal_reason, sealed_at FROM t`

// insertDEKSQL runs after retireDEKSQL, under its lock, so its check sees
// the state retireDEKSQL returned.
const insertDEKSQL = `INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, kcv, active, created_at)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, true, $9
	WHERE EXISTS (SELECT FROM tenants WHERE id = $2 AND state = 'active')`

// InsertDEK implements store.Backend: two statements sent together, in
// one implicit transaction and one round trip.
func (b *Backend) InsertDEK(ctx context.Context, d store.DEK) error {
	batch := &pgx.Batch{}
	batch.Queue(retireDEKSQL, d.Tenant)
	batch.Queue(insertDEKSQL, d.ID, d.Tenant, d.Key.URL(), d.Current.KID.String(), d.Current.KID.Version,
		d.Current.Alg, d.Current.Value, d.KCV, nanos(d.CreatedAt))
	br := b.pool.SendBatch(ctx, batch)
	defer br.Close()
	var st stateRow
	err := br.QueryRow().Scan(st.dest()...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tenantNotFound(d.Tenant)
	case err != nil:
		return fmt.Errorf("retire dek: %w", err)
	case st.err(d.Tenant) != nil:
		return st.err(d.Tenant)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("insert dek: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("insert dek: %w", err)
	}
	return nil
}
