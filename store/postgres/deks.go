package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// dekCols are one layer of a DEK: deks d joined with dek_wrappings w.
const dekCols = `d.id, d.tenant, w.layer, w.key_url, w.kid, w.alg, w.wrapped, w.prev_kid, w.prev_alg, w.prev_wrapped,
	w.kcv, d.kcv, d.active, d.created_at, d.uses`

// dekRow scans dekCols, which are NULL when a LEFT JOIN found no DEK.
type dekRow struct {
	id, tenant, layer, keyURL, kid, alg, prevKID, prevAlg *string
	wrapped, prevWrapped, kcv, fullKCV                    []byte
	active                                                *bool
	created, uses                                         *int64
}

func (r *dekRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.layer, &r.keyURL, &r.kid, &r.alg, &r.wrapped, &r.prevKID, &r.prevAlg,
		&r.prevWrapped, &r.kcv, &r.fullKCV, &r.active, &r.created, &r.uses}
}

// dek reads the row; the key ids it holds were written canonical, so one
// that does not parse is a damaged row.
func (r *dekRow) dek() (store.DEK, error) {
	d := store.DEK{
		ID: *r.id, Tenant: *r.tenant, Layer: *r.layer,
		Current:   cmkd.Wrapped{Alg: *r.alg, Value: r.wrapped},
		KCV:       r.kcv,
		FullKCV:   r.fullKCV,
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

// dekWithState reads the layers of one DEK of tenant, picked by on, and
// the tenant's state in one statement.
func (b *Backend) dekWithState(ctx context.Context, tenant, on string, args ...any) ([]store.DEK, error) {
	rows, err := b.pool.Query(ctx, `SELECT t.state, t.seal_reason, t.sealed_at, `+dekCols+`
		FROM tenants t LEFT JOIN deks d ON d.tenant = t.id AND `+on+`
		LEFT JOIN dek_wrappings w ON w.dek_id = d.id WHERE t.id = $1 ORDER BY w.layer`,
		append([]any{tenant}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read dek: %w", err)
	}
	defer rows.Close()
	var out []store.DEK
	found := false
	for rows.Next() {
		found = true
		var st stateRow
		var d dekRow
		if err := rows.Scan(append(st.dest(), d.dest()...)...); err != nil {
			return nil, fmt.Errorf("read dek: %w", err)
		}
		if err := st.err(tenant); err != nil {
			return nil, err
		}
		if d.id == nil || d.layer == nil {
			continue
		}
		l, err := d.dek()
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dek: %w", err)
	}
	switch {
	case !found:
		return nil, tenantNotFound(tenant)
	case len(out) == 0:
		return nil, fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return out, nil
}

// ActiveDEK implements store.Backend.
func (b *Backend) ActiveDEK(ctx context.Context, tenant string) ([]store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.active`)
}

// GetDEK implements store.Backend.
func (b *Backend) GetDEK(ctx context.Context, tenant, id string) ([]store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.id = $2`, id)
}

// TenantDEKs implements store.Backend.
func (b *Backend) TenantDEKs(ctx context.Context, tenant, after string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM (SELECT id FROM deks WHERE tenant = $1 AND id > $2
			AND NOT EXISTS (SELECT FROM dek_wrappings u WHERE u.dek_id = deks.id AND u.unreadable)
			ORDER BY id LIMIT $3) p
		JOIN deks d ON d.id = p.id JOIN dek_wrappings w ON w.dek_id = d.id ORDER BY d.id, w.layer`, tenant, after, limit)
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

// InsertDEK implements store.Backend. The tenant's row is locked against
// every other write of its DEKs and records, against seals and key changes,
// which orders two processes making a DEK for one tenant: the second
// retires the first's instead of colliding with it on deks_one_active.
func (b *Backend) InsertDEK(ctx context.Context, layers []store.DEK) error {
	if len(layers) == 0 {
		return fmt.Errorf("insert dek: no layer")
	}
	d := layers[0]
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, d.Tenant))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return tenantNotFound(d.Tenant)
		case err != nil:
			return fmt.Errorf("read tenant: %w", err)
		case t.Sealed():
			return t.SealedError()
		case !store.HasLayers(t, layers):
			return fmt.Errorf("insert dek: %w: the tenant's keys changed", store.ErrCASConflict)
		}
		batch := &pgx.Batch{}
		batch.Queue(`UPDATE deks SET active = false WHERE tenant = $1 AND active`, d.Tenant)
		batch.Queue(`INSERT INTO deks (id, tenant, kcv, active, created_at) VALUES ($1, $2, $3, true, $4)`,
			d.ID, d.Tenant, d.FullKCV, nanos(d.CreatedAt))
		queueLayers(batch, layers)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("insert dek: %w", err)
		}
		return nil
	})
}

// queueLayers queues the inserts of a DEK's layers.
func queueLayers(batch *pgx.Batch, layers []store.DEK) {
	for _, l := range layers {
		var prevKID, prevVersion, prevAlg *string
		var prevWrapped []byte
		if p := l.Previous; p != nil {
			k, v := p.KID.String(), p.KID.Version
			prevKID, prevVersion, prevAlg, prevWrapped = &k, &v, &p.Alg, p.Value
		}
		batch.Queue(`INSERT INTO dek_wrappings (dek_id, tenant, layer, key_url, kid, version, alg, wrapped,
				prev_kid, prev_version, prev_alg, prev_wrapped, kcv) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			l.ID, l.Tenant, l.Layer, l.Key.URL(), l.Current.KID.String(), l.Current.KID.Version, l.Current.Alg, l.Current.Value,
			prevKID, prevVersion, prevAlg, prevWrapped, l.KCV)
	}
}
