package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// ListDEKsNotAt implements store.Backend.
func (b *Backend) ListDEKsNotAt(ctx context.Context, key cmkd.KeyID, version, after string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM dek_wrappings w JOIN deks d ON d.id = w.dek_id
		WHERE w.key_url = ? AND w.version <> ? AND w.dek_id > ? AND w.unreadable = 0 ORDER BY w.dek_id LIMIT ?`, key.URL(), version, after, limit)
}

// DEKsAt implements store.Backend.
func (b *Backend) DEKsAt(ctx context.Context, key cmkd.KeyID, version string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM dek_wrappings w JOIN deks d ON d.id = w.dek_id
		WHERE w.key_url = ? AND w.version = ? AND w.unreadable = 0 ORDER BY w.dek_id LIMIT ?`, key.URL(), version, limit)
}

// casSQL swaps one DEK's wrapping if it is still wrapped by the expected
// KID; CompareAndSwapWrapping (swaps.go) runs it group-committed.
const casSQL = `UPDATE dek_wrappings SET
	prev_kid = kid, prev_alg = alg, prev_wrapped = wrapped,
	kid = ?, version = ?, alg = ?, wrapped = ?
	WHERE dek_id = ? AND kid = ?`

// RollbackWrapping implements store.Backend.
func (b *Backend) RollbackWrapping(ctx context.Context, id string, expect cmkd.KeyID) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		var prev sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT prev_kid FROM dek_wrappings WHERE dek_id = ? AND kid = ?`, id, expect.String()).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return b.casResult(ctx, tx, nil, id)
		}
		if err != nil {
			return fmt.Errorf("read wrapping: %w", err)
		}
		if !prev.Valid {
			return store.ErrNoPrevious
		}
		prevKID, err := cmkd.ParseKeyID(prev.String)
		if err != nil {
			return fmt.Errorf("dek %s: previous kid: %w", id, err)
		}
		// The rolled-back wrapping stays as previous, so a rollback can be
		// undone the same way.
		_, err = tx.ExecContext(ctx, `UPDATE dek_wrappings SET
			kid = prev_kid, alg = prev_alg, wrapped = prev_wrapped, version = ?,
			prev_kid = kid, prev_alg = alg, prev_wrapped = wrapped
			WHERE dek_id = ? AND kid = ?`, prevKID.Version, id, expect.String())
		if err != nil {
			return fmt.Errorf("roll back wrapping: %w", err)
		}
		return nil
	})
}

// casResult turns "no row updated" into ErrNotFound or ErrCASConflict.
func (b *Backend) casResult(ctx context.Context, q querier, res sql.Result, id string) error {
	if res != nil {
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
	}
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM deks WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("dek: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read dek: %w", err)
	}
	return store.ErrCASConflict
}

// VersionCounts implements store.Backend.
func (b *Backend) VersionCounts(ctx context.Context, key cmkd.KeyID) (map[string]int, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT version, count(*) FROM dek_wrappings WHERE key_url = ? AND unreadable = 0 GROUP BY version`, key.URL())
	if err != nil {
		return nil, fmt.Errorf("count versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var v string
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("count versions: %w", err)
		}
		out[v] = n
	}
	return out, rows.Err()
}

// CompleteRewrap implements store.Backend.
func (b *Backend) CompleteRewrap(ctx context.Context, key cmkd.KeyID, version string, evs []cmkd.StatusEvent) error {
	keyURL := key.URL()
	return b.tx(ctx, func(tx *sql.Tx) error {
		var left int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM dek_wrappings WHERE key_url = ? AND version <> ? AND unreadable = 0`, keyURL, version).Scan(&left)
		if err != nil {
			return fmt.Errorf("count deks: %w", err)
		}
		if left > 0 {
			return fmt.Errorf("%w: %d deks under %s not at %s", store.ErrRewrapIncomplete, left, keyURL, version)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET key_version = ? WHERE key_url = ?`, version, keyURL); err != nil {
			return fmt.Errorf("set key version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET platform_key_version = ? WHERE platform_key_url = ?`, version, keyURL); err != nil {
			return fmt.Errorf("set platform key version: %w", err)
		}
		return appendOutbox(ctx, tx, evs)
	})
}

// QuarantineDEK implements store.Backend.
func (b *Backend) QuarantineDEK(ctx context.Context, id, reason string, ev cmkd.StatusEvent) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE dek_wrappings SET unreadable = 1, unreadable_reason = ? WHERE dek_id = ? AND unreadable = 0`, reason, id)
		if err != nil {
			return fmt.Errorf("quarantine dek: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already set aside, or gone
		}
		return appendOutbox(ctx, tx, []cmkd.StatusEvent{ev})
	})
}
