package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/store"
)

// takeLeaseSQL takes the lease if it is free, expired or the holder's
// own, and locks its row either way. A renewal by the holder keeps the
// token; a new acquisition writes token 0, for drawTokenSQL to replace.
const takeLeaseSQL = `INSERT INTO leases (name, holder, token, expires) VALUES ($1, $2, 0, $4)
	ON CONFLICT (name) DO UPDATE SET
		holder = excluded.holder,
		token = CASE WHEN leases.holder = excluded.holder AND leases.expires > $3 THEN leases.token ELSE 0 END,
		expires = excluded.expires
	WHERE leases.holder = excluded.holder OR leases.expires <= $3`

// drawTokenSQL draws a new acquisition's token while the row is locked:
// whoever held the name before drew theirs while they held it, so the new
// token is larger. (Drawn in the INSERT, it would be drawn before the
// insert waited, and could lose to a token drawn later.)
const drawTokenSQL = `UPDATE leases SET token = nextval('lease_tokens') WHERE name = $1 AND token = 0` // #nosec G101 -- a fencing token, not a credential

const readLeaseSQL = `SELECT holder, token, expires FROM leases WHERE name = $1`

// AcquireLease implements store.Backend: three statements in one implicit
// transaction and one round trip. The last reads the lease as it is now,
// the caller's or the holder's that kept it.
func (b *Backend) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error) {
	expires := now.Add(ttl).UTC()
	for attempt := 1; ; attempt++ {
		batch := &pgx.Batch{}
		batch.Queue(takeLeaseSQL, name, holder, now.UnixNano(), expires.UnixNano())
		batch.Queue(drawTokenSQL, name)
		batch.Queue(readLeaseSQL, name)
		l, err := b.takeLease(ctx, batch, name)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && attempt < 3:
			continue // the holder released it between our statements: try again
		case err != nil:
			return store.Lease{}, fmt.Errorf("acquire lease: %w", err)
		case l.Holder != holder:
			return store.Lease{}, &store.LeaseHeldError{Lease: l}
		}
		return l, nil
	}
}

func (b *Backend) takeLease(ctx context.Context, batch *pgx.Batch, name string) (store.Lease, error) {
	br := b.pool.SendBatch(ctx, batch)
	defer br.Close()
	l := store.Lease{Name: name}
	var exp int64
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return l, err
		}
	}
	if err := br.QueryRow().Scan(&l.Holder, &l.Token, &exp); err != nil {
		return l, err
	}
	l.Expires = time.Unix(0, exp).UTC()
	return l, br.Close()
}

// RenewLease implements store.Backend.
func (b *Backend) RenewLease(ctx context.Context, l store.Lease, now time.Time, ttl time.Duration) (store.Lease, error) {
	l.Expires = now.Add(ttl).UTC()
	tag, err := b.pool.Exec(ctx, `UPDATE leases SET expires = $1
		WHERE name = $2 AND holder = $3 AND token = $4 AND expires > $5`,
		l.Expires.UnixNano(), l.Name, l.Holder, l.Token, now.UnixNano())
	if err != nil {
		return store.Lease{}, fmt.Errorf("renew lease: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.Lease{}, fmt.Errorf("lease %s token %d: %w", l.Name, l.Token, store.ErrLeaseLost)
	}
	return l, nil
}

// ReleaseLease implements store.Backend. The row goes: tokens come from
// the lease_tokens sequence, so the next one is still larger than every
// one before.
func (b *Backend) ReleaseLease(ctx context.Context, l store.Lease) error {
	_, err := b.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2 AND token = $3`,
		l.Name, l.Holder, l.Token)
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// CheckLease implements store.Backend.
func (b *Backend) CheckLease(ctx context.Context, l store.Lease, now time.Time) error {
	var held bool
	err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM leases
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires > $4)`,
		l.Name, l.Holder, l.Token, now.UnixNano()).Scan(&held)
	if err != nil {
		return fmt.Errorf("check lease: %w", err)
	}
	if !held {
		return fmt.Errorf("lease %s token %d: %w", l.Name, l.Token, store.ErrLeaseLost)
	}
	return nil
}

// Leases implements store.Backend.
func (b *Backend) Leases(ctx context.Context) ([]store.Lease, error) {
	rows, err := b.pool.Query(ctx, `SELECT name, holder, token, expires FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Lease, error) {
		var l store.Lease
		var exp int64
		err := r.Scan(&l.Name, &l.Holder, &l.Token, &exp)
		l.Expires = time.Unix(0, exp).UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return ls, nil
}
