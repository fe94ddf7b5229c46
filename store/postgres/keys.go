package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Keys implements store.Backend.
func (b *Backend) Keys(ctx context.Context) ([]store.KeyUse, error) {
	rows, err := b.pool.Query(ctx, `SELECT k,
			count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state = 'sealed')
		FROM (SELECT key_url AS k, state FROM tenants WHERE key_url <> ''
			UNION ALL SELECT platform_key_url, state FROM tenants WHERE platform_key_url <> ''
			UNION ALL SELECT change_from, state FROM tenants WHERE change_from <> '') u
		GROUP BY k ORDER BY k`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.KeyUse, error) {
		var u store.KeyUse
		var key string
		if err := r.Scan(&key, &u.Active, &u.Sealed); err != nil {
			return u, err
		}
		var err error
		if u.Key, err = cmkd.ParseKeyID(key); err != nil {
			return u, fmt.Errorf("stored key: %w", err)
		}
		return u, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

const keyStatusCols = `key_url, holder, checked_at, probed_at, outcome, interval_ns,
	rewrap_target, rewrap_done, rewrap_total, rewrap_running`

// PutKeyStatus implements store.Backend.
func (b *Backend) PutKeyStatus(ctx context.Context, st store.KeyStatus) error {
	_, err := b.pool.Exec(ctx, `INSERT INTO key_status (`+keyStatusCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (key_url) DO UPDATE SET holder = excluded.holder, checked_at = excluded.checked_at,
			probed_at = excluded.probed_at, outcome = excluded.outcome, interval_ns = excluded.interval_ns,
			rewrap_target = excluded.rewrap_target, rewrap_done = excluded.rewrap_done,
			rewrap_total = excluded.rewrap_total, rewrap_running = excluded.rewrap_running`,
		st.Key.URL(), st.Holder, nanos(st.CheckedAt), nanos(st.ProbedAt), st.Outcome, int64(st.Interval),
		st.Rewrap.Target, st.Rewrap.Done, st.Rewrap.Total, st.Rewrap.Running)
	if err != nil {
		return fmt.Errorf("write key status: %w", err)
	}
	return nil
}

// KeyStatuses implements store.Backend.
func (b *Backend) KeyStatuses(ctx context.Context) ([]store.KeyStatus, error) {
	rows, err := b.pool.Query(ctx, `SELECT `+keyStatusCols+` FROM key_status ORDER BY key_url`)
	if err != nil {
		return nil, fmt.Errorf("list key statuses: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.KeyStatus, error) {
		var st store.KeyStatus
		var key string
		var checked, probed *int64
		var interval int64
		if err := r.Scan(&key, &st.Holder, &checked, &probed, &st.Outcome, &interval,
			&st.Rewrap.Target, &st.Rewrap.Done, &st.Rewrap.Total, &st.Rewrap.Running); err != nil {
			return st, err
		}
		var err error
		if st.Key, err = cmkd.ParseKeyID(key); err != nil {
			return st, fmt.Errorf("stored key: %w", err)
		}
		st.CheckedAt, st.ProbedAt, st.Interval = fromNanos(checked), fromNanos(probed), time.Duration(interval)
		return st, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list key statuses: %w", err)
	}
	return out, nil
}
