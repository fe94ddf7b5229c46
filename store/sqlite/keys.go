package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Keys implements store.Backend.
func (b *Backend) Keys(ctx context.Context) ([]store.KeyUse, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT k, sum(state = 'active'), sum(state = 'sealed') FROM (
			SELECT key_url AS k, state FROM tenants WHERE key_url <> ''
			UNION ALL SELECT platform_key_url, state FROM tenants WHERE platform_key_url <> ''
			UNION ALL SELECT change_from, state FROM tenants WHERE change_from <> '')
		GROUP BY k ORDER BY k`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.KeyUse
	for rows.Next() {
		var u store.KeyUse
		var key string
		if err := rows.Scan(&key, &u.Active, &u.Sealed); err != nil {
			return nil, err
		}
		if u.Key, err = cmkd.ParseKeyID(key); err != nil {
			return nil, fmt.Errorf("stored key: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// PutKeyStatus implements store.Backend.
func (b *Backend) PutKeyStatus(ctx context.Context, st store.KeyStatus) error {
	_, err := b.db.ExecContext(ctx, `INSERT INTO key_status (key_url, holder, checked_at, probed_at, outcome, interval_ns,
			rewrap_target, rewrap_done, rewrap_total, rewrap_running)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key_url) DO UPDATE SET holder = excluded.holder, checked_at = excluded.checked_at,
			probed_at = excluded.probed_at, outcome = excluded.outcome, interval_ns = excluded.interval_ns,
			rewrap_target = excluded.rewrap_target, rewrap_done = excluded.rewrap_done,
			rewrap_total = excluded.rewrap_total, rewrap_running = excluded.rewrap_running`,
		st.Key.URL(), st.Holder, unixNano(st.CheckedAt), unixNano(st.ProbedAt), st.Outcome, int64(st.Interval),
		st.Rewrap.Target, st.Rewrap.Done, st.Rewrap.Total, st.Rewrap.Running)
	return err
}

// KeyStatuses implements store.Backend.
func (b *Backend) KeyStatuses(ctx context.Context) ([]store.KeyStatus, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT key_url, holder, checked_at, probed_at, outcome, interval_ns,
		rewrap_target, rewrap_done, rewrap_total, rewrap_running FROM key_status ORDER BY key_url`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.KeyStatus
	for rows.Next() {
		var st store.KeyStatus
		var key string
		var checked, probed, interval int64
		if err := rows.Scan(&key, &st.Holder, &checked, &probed, &st.Outcome, &interval,
			&st.Rewrap.Target, &st.Rewrap.Done, &st.Rewrap.Total, &st.Rewrap.Running); err != nil {
			return nil, err
		}
		if st.Key, err = cmkd.ParseKeyID(key); err != nil {
			return nil, fmt.Errorf("stored key: %w", err)
		}
		st.CheckedAt, st.ProbedAt, st.Interval = fromNano(checked), fromNano(probed), time.Duration(interval)
		out = append(out, st)
	}
	return out, rows.Err()
}
