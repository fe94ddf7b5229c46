package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

func (b *Backend) readLease(ctx context.Context, tx *sql.Tx, name string) (store.Lease, bool, error) {
	l := store.Lease{Name: name}
	var exp int64
	err := tx.QueryRowContext(ctx, `SELECT holder, token, expires FROM leases WHERE name = ?`, name).Scan(&l.Holder, &l.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("read lease: %w", err)
	}
	l.Expires = fromNano(exp)
	return l, true, nil
}

// AcquireLease implements store.Backend.
func (b *Backend) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error) {
	var out store.Lease
	err := b.tx(ctx, func(tx *sql.Tx) error {
		cur, ok, err := b.readLease(ctx, tx, name)
		if err != nil {
			return err
		}
		held := ok && cur.Holder != "" && now.Before(cur.Expires)
		switch {
		case held && cur.Holder != holder:
			return &store.LeaseHeldError{Lease: cur}
		case held:
			out = cur // renewal keeps the token
		default:
			var token int64
			if err := tx.QueryRowContext(ctx, `UPDATE lease_tokens SET last = last + 1 WHERE id = 1 RETURNING last`).Scan(&token); err != nil {
				return fmt.Errorf("next lease token: %w", err)
			}
			out = store.Lease{Name: name, Holder: holder, Token: token}
		}
		out.Expires = now.Add(ttl).UTC()
		_, err = tx.ExecContext(ctx, `INSERT INTO leases (name, holder, token, expires) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token, expires = excluded.expires`,
			name, holder, out.Token, unixNano(out.Expires))
		if err != nil {
			return fmt.Errorf("write lease: %w", err)
		}
		return nil
	})
	return out, err
}

// RenewLease implements store.Backend.
func (b *Backend) RenewLease(ctx context.Context, l store.Lease, now time.Time, ttl time.Duration) (store.Lease, error) {
	l.Expires = now.Add(ttl).UTC()
	res, err := b.db.ExecContext(ctx, `UPDATE leases SET expires = ? WHERE name = ? AND holder = ? AND token = ? AND expires > ?`,
		unixNano(l.Expires), l.Name, l.Holder, l.Token, unixNano(now))
	if err != nil {
		return store.Lease{}, fmt.Errorf("renew lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.Lease{}, fmt.Errorf("lease %s token %d: %w", l.Name, l.Token, store.ErrLeaseLost)
	}
	return l, nil
}

// ReleaseLease implements store.Backend. The row goes: tokens come from
// lease_tokens, so the next one is still larger than every one before.
func (b *Backend) ReleaseLease(ctx context.Context, l store.Lease) error {
	_, err := b.db.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ? AND token = ?`,
		l.Name, l.Holder, l.Token)
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// CheckLease implements store.Backend.
func (b *Backend) CheckLease(ctx context.Context, l store.Lease, now time.Time) error {
	var one int
	err := b.db.QueryRowContext(ctx, `SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires > ?`,
		l.Name, l.Holder, l.Token, unixNano(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease %s token %d: %w", l.Name, l.Token, store.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("check lease: %w", err)
	}
	return nil
}

// Leases implements store.Backend.
func (b *Backend) Leases(ctx context.Context) ([]store.Lease, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT name, holder, token, expires FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	var out []store.Lease
	for rows.Next() {
		var l store.Lease
		var exp int64
		if err := rows.Scan(&l.Name, &l.Holder, &l.Token, &exp); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		l.Expires = fromNano(exp)
		out = append(out, l)
	}
	return out, rows.Err()
}
