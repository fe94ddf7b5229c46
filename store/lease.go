package store

import (
	"context"
	"errors"
	"time"
)

func checkLeaseArgs(name, holder string, ttl time.Duration) error {
	if name == "" || holder == "" || ttl <= 0 {
		return errors.New("lease: name, holder and a positive ttl are required")
	}
	return nil
}

// AcquireLease takes the named lease for holder for ttl; ErrLeaseHeld if
// another holder has it. Re-acquiring one's own lease renews it.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseArgs(name, holder, ttl); err != nil {
		return Lease{}, err
	}
	return s.b.AcquireLease(ctx, name, holder, s.now().UTC(), ttl)
}

// RenewLease extends l by ttl from now; ErrLeaseLost if it was lost.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := checkLeaseArgs(l.Name, l.Holder, ttl); err != nil {
		return Lease{}, err
	}
	return s.b.RenewLease(ctx, l, s.now().UTC(), ttl)
}

// ReleaseLease frees l if it is still held with its token.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	return s.b.ReleaseLease(ctx, l)
}

// Leases lists the leases not released.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) { return s.b.Leases(ctx) }

// CheckLease fails with ErrLeaseLost unless l still holds: the fence a
// lease-guarded writer checks before it writes.
func (s *Store) CheckLease(ctx context.Context, l Lease) error {
	return s.b.CheckLease(ctx, l, s.now().UTC())
}
