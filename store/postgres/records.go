package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/store"
)

// getRecordSQL reads a record of an active tenant: the tenant's state is
// checked in the same statement, so a seal committed before it is always
// seen. It returns the value alone, as a plain read would; a sealed or
// missing tenant, or a missing record, gives no row, and
// getRecordDetailSQL says which. Returning the tenant's state on every
// read cost about a tenth of one (x-plain 1.19-1.23 against 1.09-1.12,
// measured interleaved).
const getRecordSQL = `SELECT r.value FROM tenants t JOIN records r ON r.tenant = t.id AND r.key = $2
	WHERE t.id = $1 AND t.state = 'active'`

// getRecordDetailSQL is the slow path: the record and its tenant's state.
// A sealed tenant's blob does not leave the database.
const getRecordDetailSQL = `SELECT t.state, t.seal_reason, t.sealed_at, r.key IS NOT NULL,
		CASE WHEN t.state = 'active' THEN r.value END
	FROM tenants t LEFT JOIN records r ON r.tenant = t.id AND r.key = $2
	WHERE t.id = $1`

// GetRecord implements store.Backend. When the fast statement finds
// nothing, getRecordDetailSQL reads tenant and record again and its answer
// alone decides, so every result comes from one consistent statement.
func (b *Backend) GetRecord(ctx context.Context, tenant, key string) ([]byte, error) {
	var value []byte
	err := b.pool.QueryRow(ctx, getRecordSQL, tenant, keyBytes(key)).Scan(&value)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return b.getRecordDetail(ctx, tenant, key)
	case err != nil:
		return nil, fmt.Errorf("read record: %w", err)
	case value == nil:
		return []byte{}, nil // an empty record
	}
	return value, nil
}

func (b *Backend) getRecordDetail(ctx context.Context, tenant, key string) ([]byte, error) {
	var st stateRow
	var found bool
	var value []byte
	err := b.pool.QueryRow(ctx, getRecordDetailSQL, tenant, keyBytes(key)).Scan(append(st.dest(), &found, &value)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, tenantNotFound(tenant)
	case err != nil:
		return nil, fmt.Errorf("read record: %w", err)
	case st.err(tenant) != nil:
		return nil, st.err(tenant)
	case !found:
		return nil, fmt.Errorf("record: %w", store.ErrNotFound)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// lockActive is how every write of a tenant's records and DEKs begins: it
// share-locks the tenant's row and reads the state it holds. A seal's
// update waits for the lock, and a lock taken while a seal is under way
// waits for it and then reads the sealed row, so a write is wholly before
// or wholly after every seal. Shared, it lets the tenant's writes run
// together.
const lockActive = `t AS (SELECT state, seal_reason, sealed_at FROM tenants WHERE id = $1 FOR SHARE)`

// putRecordSQL writes the record, in one statement, only if the tenant is
// active and the DEK is the tenant's. Its row is the tenant's state and
// whether the record was written; no row, no tenant.
const putRecordSQL = `WITH ` + lockActive + `, r AS (
		INSERT INTO records (tenant, key, dek_id, value)
		SELECT $1, $2, $3, $4 FROM deks
		WHERE id = $3 AND tenant = $1 AND EXISTS (SELECT FROM t WHERE state = 'active')
		ON CONFLICT (tenant, key) DO UPDATE SET dek_id = excluded.dek_id, value = excluded.value
		RETURNING 1
	)
	SELECT t.state, t.seal_reason, t.sealed_at, EXISTS (SELECT FROM r) FROM t`

// PutRecord implements store.Backend.
func (b *Backend) PutRecord(ctx context.Context, tenant, key, dekID string, blob []byte) error {
	if blob == nil {
		blob = []byte{} // an empty record, not NULL
	}
	var st stateRow
	var written bool
	err := b.pool.QueryRow(ctx, putRecordSQL, tenant, keyBytes(key), dekID, blob).Scan(append(st.dest(), &written)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tenantNotFound(tenant)
	case err != nil:
		return fmt.Errorf("write record: %w", err)
	case st.err(tenant) != nil:
		return st.err(tenant)
	case !written:
		return fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	return nil
}

// AddDEKUses implements store.Backend.
func (b *Backend) AddDEKUses(ctx context.Context, id string, n int64) (int64, error) {
	var uses int64
	err := b.pool.QueryRow(ctx, `UPDATE deks SET uses = uses + $2 WHERE id = $1 RETURNING uses`, id, n).Scan(&uses)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("dek %s: %w", id, store.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("count dek uses: %w", err)
	}
	return uses, nil
}

const deleteRecordSQL = `WITH ` + lockActive + `, del AS (
		DELETE FROM records WHERE tenant = $1 AND key = $2 AND EXISTS (SELECT FROM t WHERE state = 'active')
		RETURNING 1
	)
	SELECT t.state, t.seal_reason, t.sealed_at, EXISTS (SELECT FROM del) FROM t`

// DeleteRecord implements store.Backend.
func (b *Backend) DeleteRecord(ctx context.Context, tenant, key string) error {
	var st stateRow
	var deleted bool
	err := b.pool.QueryRow(ctx, deleteRecordSQL, tenant, keyBytes(key)).Scan(append(st.dest(), &deleted)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tenantNotFound(tenant)
	case err != nil:
		return fmt.Errorf("delete record: %w", err)
	case st.err(tenant) != nil:
		return st.err(tenant)
	case !deleted:
		return fmt.Errorf("record: %w", store.ErrNotFound)
	}
	return nil
}

// ListRecords implements store.Backend. Like a read, it checks the
// tenant's state in the same statement: every row carries it, and a
// tenant without records still gives one row, with a NULL key.
func (b *Backend) ListRecords(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	rows, err := b.pool.Query(ctx, `SELECT t.state, t.seal_reason, t.sealed_at, r.key
		FROM tenants t LEFT JOIN records r ON r.tenant = t.id AND r.key > $2 WHERE t.id = $1
		ORDER BY r.key LIMIT $3`, tenant, keyBytes(after), limit)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var st stateRow
	var key []byte
	var keys []string
	seen := false
	_, err = pgx.ForEachRow(rows, append(st.dest(), &key), func() error {
		if err := st.err(tenant); err != nil {
			return err
		}
		seen = true
		if key != nil {
			keys = append(keys, string(key))
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrSealed):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("list records: %w", err)
	case !seen:
		return nil, tenantNotFound(tenant)
	}
	return keys, nil
}

// keyBytes is a record key as its bytea column takes it: "" is an empty
// bytea, not NULL.
func keyBytes(k string) []byte {
	if k == "" {
		return []byte{}
	}
	return []byte(k)
}
