package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// ListDEKsNotAt implements store.Backend. It walks deks_key_id in id
// order, so each page starts where the last ended whatever the versions.
func (b *Backend) ListDEKsNotAt(ctx context.Context, key cmkd.KeyID, version, after string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM dek_wrappings w JOIN deks d ON d.id = w.dek_id
		WHERE w.key_url = $1 AND w.dek_id > $3 AND NOT w.unreadable AND w.version <> $2
		ORDER BY d.id LIMIT $4`, key.URL(), version, after, limit)
}

// DEKsAt implements store.Backend.
func (b *Backend) DEKsAt(ctx context.Context, key cmkd.KeyID, version string, limit int) ([]store.DEK, error) {
	return b.queryDEKs(ctx, `SELECT `+dekCols+` FROM dek_wrappings w JOIN deks d ON d.id = w.dek_id
		WHERE w.key_url = $1 AND w.version = $2 AND NOT w.unreadable ORDER BY w.dek_id LIMIT $3`, key.URL(), version, limit)
}

// rollbackSQL makes the previous wrapping current, keeping the current one
// as previous (so a rollback can be undone the same way), if the DEK is
// still wrapped by the expected KID. Its row tells why not: no row, no
// such DEK; otherwise the KID and previous wrapping as they were when the
// statement began.
const rollbackSQL = `WITH u AS (
		UPDATE dek_wrappings SET
			kid = prev_kid, version = prev_version, alg = prev_alg, wrapped = prev_wrapped,
			prev_kid = kid, prev_version = version, prev_alg = alg, prev_wrapped = wrapped
		WHERE dek_id = $1 AND kid = $2 AND prev_kid IS NOT NULL
		RETURNING 1
	)
	SELECT EXISTS (SELECT FROM u), bool_or(kid = $2), bool_or(kid = $2 AND prev_kid IS NOT NULL)
	FROM dek_wrappings WHERE dek_id = $1 HAVING count(*) > 0`

// RollbackWrapping implements store.Backend.
func (b *Backend) RollbackWrapping(ctx context.Context, id string, expect cmkd.KeyID) error {
	var done, wasExpected, hadPrevious bool
	err := b.pool.QueryRow(ctx, rollbackSQL, id, expect.String()).Scan(&done, &wasExpected, &hadPrevious)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("dek: %w", store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("roll back wrapping: %w", err)
	case done:
		return nil
	case wasExpected && !hadPrevious:
		return store.ErrNoPrevious
	}
	// Either another KID, or one that was the expected one when the
	// statement began and was swapped before the update could take it.
	return store.ErrCASConflict
}

// VersionCounts implements store.Backend.
func (b *Backend) VersionCounts(ctx context.Context, key cmkd.KeyID) (map[string]int, error) {
	rows, err := b.pool.Query(ctx, `SELECT version, count(*) FROM dek_wrappings
		WHERE key_url = $1 AND NOT unreadable GROUP BY version`, key.URL())
	if err != nil {
		return nil, fmt.Errorf("count versions: %w", err)
	}
	out := map[string]int{}
	var v string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&v, &n}, func() error {
		out[v] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count versions: %w", err)
	}
	return out, nil
}

// lockKeyTenantsSQL locks the key's tenants, in id order as SealTenants
// does, so that no DEK is made for them (InsertDEK locks its tenant the
// same way) between completeRewrapSQL's count and the commit.
const lockKeyTenantsSQL = `SELECT count(*) FROM (
	SELECT id FROM tenants WHERE key_url = $1 OR platform_key_url = $1 ORDER BY id FOR NO KEY UPDATE) l`

// completeRewrapSQL records the version and writes the events only if no
// DEK under the key is at another version, and returns how many are.
var completeRewrapSQL = `WITH n AS (
		SELECT count(*) AS remaining FROM dek_wrappings WHERE key_url = $1 AND version <> $2 AND NOT unreadable
	), u AS (
		UPDATE tenants SET key_version = $2 WHERE key_url = $1 AND (SELECT remaining FROM n) = 0
	), p AS (
		UPDATE tenants SET platform_key_version = $2 WHERE platform_key_url = $1 AND (SELECT remaining FROM n) = 0
	), o AS (` + insertOutbox(3, `WHERE (SELECT remaining FROM n) = 0`) + `)
	SELECT remaining FROM n`

// CompleteRewrap implements store.Backend: two statements in one implicit
// transaction and one round trip.
func (b *Backend) CompleteRewrap(ctx context.Context, key cmkd.KeyID, version string, evs []cmkd.StatusEvent) error {
	o, err := outboxArgs(evs)
	if err != nil {
		return err
	}
	keyURL := key.URL()
	batch := &pgx.Batch{}
	batch.Queue(lockKeyTenantsSQL, keyURL)
	batch.Queue(completeRewrapSQL, append([]any{keyURL, version}, o...)...)
	br := b.pool.SendBatch(ctx, batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("lock tenants: %w", err)
	}
	var left int64
	if err := br.QueryRow().Scan(&left); err != nil {
		return fmt.Errorf("complete rewrap: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("complete rewrap: %w", err)
	}
	if left > 0 {
		return fmt.Errorf("%w: %d deks under %s not at %s", store.ErrRewrapIncomplete, left, keyURL, version)
	}
	return nil
}

var quarantineSQL = `WITH q AS (
		UPDATE dek_wrappings SET unreadable = true, unreadable_reason = $2 WHERE dek_id = $1 AND NOT unreadable
		RETURNING dek_id
	)` + insertOutbox(3, `WHERE EXISTS (SELECT FROM q)`)

// QuarantineDEK implements store.Backend. A DEK already set aside, or
// gone, changes nothing and writes no event.
func (b *Backend) QuarantineDEK(ctx context.Context, id, reason string, ev cmkd.StatusEvent) error {
	o, err := outboxArgs([]cmkd.StatusEvent{ev})
	if err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, quarantineSQL, append([]any{id, reason}, o...)...); err != nil {
		return fmt.Errorf("quarantine dek: %w", err)
	}
	return nil
}
