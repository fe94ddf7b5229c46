package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

const dekCols = `d.id, d.tenant, d.key_url, d.kid, d.alg, d.wrapped, d.prev_kid, d.prev_alg, d.prev_wrapped,
	d.kcv, d.active, d.created_at, d.uses`

const tenantStateCols = `t.id, t.state, t.seal_reason, t.sealed_at`

// dekRow scans dekCols, which may be NULL when a LEFT JOIN found no DEK.
type dekRow struct {
	id, tenant, keyURL, kid, alg, prevKID, prevAlg sql.NullString
	wrapped, prevWrapped, kcv                      []byte
	active                                         sql.NullBool
	created, uses                                  sql.NullInt64
}

func (r *dekRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.keyURL, &r.kid, &r.alg, &r.wrapped, &r.prevKID, &r.prevAlg,
		&r.prevWrapped, &r.kcv, &r.active, &r.created, &r.uses}
}

// dek reads the row; the key ids it holds were written canonical, so one
// that does not parse is a damaged row.
func (r *dekRow) dek() (store.DEK, error) {
	d := store.DEK{
		ID: r.id.String, Tenant: r.tenant.String,
		Current:   cmkd.Wrapped{Alg: r.alg.String, Value: r.wrapped},
		KCV:       r.kcv,
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

// dekWithState reads one DEK and its tenant's state in one query.
func (b *Backend) dekWithState(ctx context.Context, tenant, join string, args ...any) (store.DEK, error) {
	var st stateRow
	var d dekRow
	err := b.db.QueryRowContext(ctx, `SELECT `+tenantStateCols+`, `+dekCols+`
		FROM tenants t LEFT JOIN deks d ON d.tenant = t.id AND `+join+` WHERE t.id = ?`,
		append(args, tenant)...).Scan(append(st.dest(), d.dest()...)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.DEK{}, fmt.Errorf("tenant %s: %w", tenant, store.ErrNotFound)
	case err != nil:
		return store.DEK{}, fmt.Errorf("read dek: %w", err)
	case st.err() != nil:
		return store.DEK{}, st.err()
	case !d.id.Valid:
		return store.DEK{}, fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return d.dek()
}

// ActiveDEK implements store.Backend.
func (b *Backend) ActiveDEK(ctx context.Context, tenant string) (store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.active = 1`)
}

// GetDEK implements store.Backend.
func (b *Backend) GetDEK(ctx context.Context, tenant, id string) (store.DEK, error) {
	return b.dekWithState(ctx, tenant, `d.id = ?`, id)
}

// TenantDEKs implements store.Backend.
func (b *Backend) TenantDEKs(ctx context.Context, tenant string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM deks d WHERE d.tenant = ?
		ORDER BY d.active DESC, d.created_at DESC LIMIT ?`, tenant, limit)
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
func (b *Backend) InsertDEK(ctx context.Context, d store.DEK) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tenantState(ctx, tx, d.Tenant); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deks SET active = 0 WHERE tenant = ? AND active = 1`, d.Tenant); err != nil {
			return fmt.Errorf("retire dek: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deks (id, tenant, key_url, kid, version, alg, wrapped, kcv, active, created_at, uses)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 0)`,
			d.ID, d.Tenant, d.Key.URL(), d.Current.KID.String(), d.Current.KID.Version, d.Current.Alg, d.Current.Value,
			d.KCV, unixNano(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert dek: %w", err)
		}
		return nil
	})
}
