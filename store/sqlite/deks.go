package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// dekCols are one layer of a DEK: deks d joined with dek_wrappings w.
const dekCols = `d.id, d.tenant, w.layer, w.key_url, w.kid, w.alg, w.wrapped, w.prev_kid, w.prev_alg, w.prev_wrapped,
	w.kcv, d.kcv, d.active, d.created_at, d.uses`

const tenantStateCols = `t.id, t.state, t.seal_reason, t.sealed_at`

// dekRow scans dekCols, which may be NULL when a LEFT JOIN found no DEK.
type dekRow struct {
	id, tenant, layer, keyURL, kid, alg, prevKID, prevAlg sql.NullString
	wrapped, prevWrapped, kcv, fullKCV                    []byte
	active                                                sql.NullBool
	created, uses                                         sql.NullInt64
}

func (r *dekRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.layer, &r.keyURL, &r.kid, &r.alg, &r.wrapped, &r.prevKID, &r.prevAlg,
		&r.prevWrapped, &r.kcv, &r.fullKCV, &r.active, &r.created, &r.uses}
}

// dek reads the row; the key ids it holds were written canonical, so one
// that does not parse is a damaged row.
func (r *dekRow) dek() (store.DEK, error) {
	d := store.DEK{
		ID: r.id.String, Tenant: r.tenant.String, Layer: r.layer.String,
		Current:   cmkd.Wrapped{Alg: r.alg.String, Value: r.wrapped},
		KCV:       r.kcv,
		FullKCV:   r.fullKCV,
		Active:    r.active.Bool,
		CreatedAt: fromNano(r.created.Int64),
		Uses:      r.uses.Int64,
	}
	var err error
	if d.Key, err = cmkd.ParseKeyID(r.keyURL.String); err != nil {
		return d, fmt.Errorf("dek %s: stored key: %w", d.ID, err)
	}
	if d.Current.KID, err = cmkd.ParseKeyID(r.kid.String); err != nil {
		return d, fmt.Errorf("dek %s: stored kid: %w", d.ID, err)
	}
	if r.prevKID.Valid {
		d.Previous = &cmkd.Wrapped{Alg: r.prevAlg.String, Value: r.prevWrapped}
		if d.Previous.KID, err = cmkd.ParseKeyID(r.prevKID.String); err != nil {
			return d, fmt.Errorf("dek %s: stored previous kid: %w", d.ID, err)
		}
	}
	return d, nil
}

// stateRow scans tenantStateCols from a LEFT JOIN rooted at the tenant.
type stateRow struct {
	id, state, reason string
	sealedAt          int64
}

func (s *stateRow) dest() []any { return []any{&s.id, &s.state, &s.reason, &s.sealedAt} }

func (s *stateRow) err() error {
	if s.state == store.StateSealed {
		return &store.SealedError{Tenant: s.id, Reason: s.reason, Since: fromNano(s.sealedAt)}
	}
	return nil
}

// dekWithState reads one DEK's layers and its tenant's state in one query.
func (b *Backend) dekWithState(ctx context.Context, tenant, join string, args ...any) ([]store.DEK, error) {
	// #nosec G202 -- join is one of ActiveDEK's and GetDEK's constant conditions, never input
	rows, err := b.db.QueryContext(ctx, `SELECT `+tenantStateCols+`, `+dekCols+`
		FROM tenants t LEFT JOIN deks d ON d.tenant = t.id AND `+join+`
		LEFT JOIN dek_wrappings w ON w.dek_id = d.id WHERE t.id = ? ORDER BY w.layer`,
		append(args, tenant)...)
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
		if err := st.err(); err != nil {
			return nil, err
		}
		if !d.id.Valid || !d.layer.Valid {
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
		return nil, fmt.Errorf("tenant %s: %w", tenant, store.ErrUnknownTenant)
	case len(out) == 0:
		return nil, fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return out, nil
}

// ActiveDEK implements store.Backend.
func (b *Backend) ActiveDEK(ctx context.Context, tenant string) ([]store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.active = 1`)
}

// GetDEK implements store.Backend.
func (b *Backend) GetDEK(ctx context.Context, tenant, id string) ([]store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.id = ?`, id)
}

// TenantDEKs implements store.Backend.
func (b *Backend) TenantDEKs(ctx context.Context, tenant, after string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM (SELECT id FROM deks WHERE tenant = ? AND id > ?
			AND NOT EXISTS (SELECT 1 FROM dek_wrappings u WHERE u.dek_id = deks.id AND u.unreadable = 1)
			ORDER BY id LIMIT ?) p
		JOIN deks d ON d.id = p.id JOIN dek_wrappings w ON w.dek_id = d.id ORDER BY d.id, w.layer`, tenant, after, limit)
}

func (b *Backend) queryDEKs(ctx context.Context, q string, args ...any) ([]store.DEK, error) {
	rows, err := b.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deks: %w", err)
	}
	defer rows.Close()
	var out []store.DEK
	for rows.Next() {
		var d dekRow
		if err := rows.Scan(d.dest()...); err != nil {
			return nil, fmt.Errorf("list deks: %w", err)
		}
		dek, err := d.dek()
		if err != nil {
			return nil, err
		}
		out = append(out, dek)
	}
	return out, rows.Err()
}

// InsertDEK implements store.Backend.
func (b *Backend) InsertDEK(ctx context.Context, layers []store.DEK) error {
	if len(layers) == 0 {
		return fmt.Errorf("insert dek: no layer")
	}
	d := layers[0]
	return b.tx(ctx, func(tx *sql.Tx) error {
		t, err := tenantState(ctx, tx, d.Tenant)
		if err != nil {
			return err
		}
		if !store.HasLayers(t, layers) {
			return fmt.Errorf("insert dek: %w: the tenant's keys changed", store.ErrCASConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deks SET active = 0 WHERE tenant = ? AND active = 1`, d.Tenant); err != nil {
			return fmt.Errorf("retire dek: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deks (id, tenant, kcv, active, created_at, uses) VALUES (?, ?, ?, 1, ?, 0)`,
			d.ID, d.Tenant, d.FullKCV, unixNano(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert dek: %w", err)
		}
		return insertLayers(ctx, tx, layers)
	})
}

// insertLayers writes a DEK's layers.
func insertLayers(ctx context.Context, tx *sql.Tx, layers []store.DEK) error {
	for _, l := range layers {
		var prevKID, prevAlg any
		var prevWrapped []byte
		if l.Previous != nil {
			prevKID, prevAlg, prevWrapped = l.Previous.KID.String(), l.Previous.Alg, l.Previous.Value
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO dek_wrappings (dek_id, tenant, layer, key_url, kid, version, alg, wrapped,
				prev_kid, prev_alg, prev_wrapped, kcv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.Tenant, l.Layer, l.Key.URL(), l.Current.KID.String(), l.Current.KID.Version, l.Current.Alg, l.Current.Value,
			prevKID, prevAlg, prevWrapped, l.KCV)
		if err != nil {
			return fmt.Errorf("insert dek layer: %w", err)
		}
	}
	return nil
}
