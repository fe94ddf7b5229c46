package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd"
)

// KeyUse is one key some tenant uses, with its tenants counted by state.
type KeyUse struct {
	Key            cmkd.KeyID
	Active, Sealed int
}

// KeyStatus is what the worker last saw of a key, kept in the store so
// that every process (`cmkd keys`, another replica) can read it.
type KeyStatus struct {
	Key cmkd.KeyID
	// Holder is the instance that last checked the key.
	Holder string
	// CheckedAt is the last check; ProbedAt the last one Key Vault
	// answered (zero when it never did).
	CheckedAt, ProbedAt time.Time
	// Outcome is what the last check found: the probe's outcome ("usable",
	// "disabled", "unreachable", ...) or "error".
	Outcome string
	// Interval is the key's effective probe interval.
	Interval time.Duration
	// Rewrap is the rewrap under way or last run; zero when none ran.
	Rewrap RewrapStatus
}

// RewrapStatus is a rewrap's progress.
type RewrapStatus struct {
	Target      string
	Done, Total int
	// Running is true while the rewrap runs.
	Running bool
}

// Keys lists every key some tenant uses.
func (s *Store) Keys(ctx context.Context) ([]KeyUse, error) {
	ks, err := s.b.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return ks, nil
}

// PutKeyStatus records st, replacing what was recorded of its key.
func (s *Store) PutKeyStatus(ctx context.Context, st KeyStatus) error {
	if err := checkKey(st.Key); err != nil {
		return err
	}
	if err := s.b.PutKeyStatus(ctx, st); err != nil {
		return fmt.Errorf("record status of %s: %w", st.Key, err)
	}
	return nil
}

// KeyStatuses lists what was recorded of every key, by key.
func (s *Store) KeyStatuses(ctx context.Context) ([]KeyStatus, error) {
	ks, err := s.b.KeyStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("list key statuses: %w", err)
	}
	return ks, nil
}
