package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd/store"
)

// getRecordSQL reads a record only if its tenant is active, in one
// statement, so a seal committed before it is always seen. It returns one
// column, as a plain read would: when the tenant is sealed or missing there
// is no row, and getRecordDetailSQL says why.
//
// INDEXED BY names the covering index on (id, state): the planner prefers
// the primary key's index, which needs a second search for state.
const getRecordSQL = `SELECT r.value FROM tenants t INDEXED BY tenants_state
	LEFT JOIN records r ON r.tenant = t.id AND r.key = ? WHERE t.id = ? AND t.state = 'active'`

// getRecordDetailSQL is getRecordSQL with the tenant's state and seal
// details, for the slow path.
const getRecordDetailSQL = `SELECT ` + tenantStateCols + `, r.value, r.tenant IS NOT NULL
	FROM tenants t LEFT JOIN records r ON r.tenant = t.id AND r.key = ? WHERE t.id = ?`

// GetRecord implements store.Backend. When the fast statement finds no
// active tenant, getRecordDetailSQL reads tenant and record again and its
// answer alone decides, so every result comes from one consistent statement.
func (b *Backend) GetRecord(ctx context.Context, tenant, key string) ([]byte, error) {
	var value []byte
	err := b.getRecord.QueryRowContext(ctx, key, tenant).Scan(&value)
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("read record: %w", err)
	case err != nil || len(value) == 0:
		// No active tenant, or no record (NULL), or an empty blob, which
		// the driver also scans as nil: the slow path tells them apart.
		return b.getRecordDetail(ctx, tenant, key)
	}
	return value, nil
}

func (b *Backend) getRecordDetail(ctx context.Context, tenant, key string) ([]byte, error) {
	var st stateRow
	var value []byte
	var found bool
	err := b.db.QueryRowContext(ctx, getRecordDetailSQL, key, tenant).Scan(append(st.dest(), &value, &found)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("tenant %s: %w", tenant, store.ErrUnknownTenant)
	case err != nil:
		return nil, fmt.Errorf("read record: %w", err)
	case st.err() != nil:
		return nil, st.err()
	case !found:
		return nil, fmt.Errorf("record: %w", store.ErrNotFound)
	}
	return value, nil
}

// activeOnly is the guard every record write carries: the statement only
// takes effect while the tenant is active.
const activeOnly = `EXISTS (SELECT 1 FROM tenants WHERE id = ? AND state = 'active')`

// putRecordSQL writes a record only if its DEK is the tenant's and the
// tenant is active, in one autocommit statement: a Put writes the record's
// pages and nothing else, as a plain insert does.
const putRecordSQL = `INSERT INTO records (tenant, key, dek_id, value)
	SELECT ?1, ?2, d.id, ?3 FROM deks d
	WHERE d.id = ?4 AND d.tenant = ?1 AND EXISTS (SELECT 1 FROM tenants WHERE id = ?1 AND state = 'active')
	ON CONFLICT (tenant, key) DO UPDATE SET dek_id = excluded.dek_id, value = excluded.value`

// PutRecord implements store.Backend.
func (b *Backend) PutRecord(ctx context.Context, tenant, key, dekID string, blob []byte) error {
	res, err := b.putRecord.ExecContext(ctx, tenant, key, blob, dekID)
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return b.tx(ctx, func(tx *sql.Tx) error { return whyNot(ctx, tx, tenant, "dek") })
	}
	return nil
}

// AddDEKUses implements store.Backend.
func (b *Backend) AddDEKUses(ctx context.Context, id string, n int64) (int64, error) {
	var uses int64
	err := b.db.QueryRowContext(ctx, `UPDATE deks SET uses = uses + ? WHERE id = ? RETURNING uses`, n, id).Scan(&uses)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("dek %s: %w", id, store.ErrNotFound)
	}
	return uses, err
}

// whyNot explains, inside the transaction, why a guarded statement matched
// nothing: the tenant is missing or sealed, or else what is missing.
func whyNot(ctx context.Context, tx *sql.Tx, tenant, what string) error {
	if _, err := tenantState(ctx, tx, tenant); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w", what, store.ErrNotFound)
}

// DeleteRecord implements store.Backend.
func (b *Backend) DeleteRecord(ctx context.Context, tenant, key string) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE tenant = ? AND key = ? AND `+activeOnly, tenant, key, tenant)
		if err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return whyNot(ctx, tx, tenant, "record")
		}
		return nil
	})
}

// ListRecords implements store.Backend.
func (b *Backend) ListRecords(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT `+tenantStateCols+`, r.key
		FROM tenants t LEFT JOIN records r ON r.tenant = t.id AND r.key > ? WHERE t.id = ?
		ORDER BY r.key LIMIT ?`, after, tenant, limit)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	var keys []string
	seen := false
	for rows.Next() {
		var st stateRow
		var key sql.NullString
		if err := rows.Scan(append(st.dest(), &key)...); err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		if err := st.err(); err != nil {
			return nil, err
		}
		seen = true
		if key.Valid {
			keys = append(keys, key.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	if !seen {
		return nil, fmt.Errorf("tenant %s: %w", tenant, store.ErrUnknownTenant)
	}
	return keys, nil
}
