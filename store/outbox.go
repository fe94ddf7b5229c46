package store

import (
	"context"
	"errors"
	"time"

	"github.com/cmkd-io/cmkd"
)

// AppendOutbox writes status events that go with no state change (for
// example key.near_expiry) to the outbox; the relay publishes them.
func (s *Store) AppendOutbox(ctx context.Context, evs ...cmkd.StatusEvent) error {
	for i := range evs {
		if evs[i].Kind == "" {
			return errors.New("append to outbox: event kind is required")
		}
		evs[i] = s.event(evs[i], evs[i].Kind, evs[i].Tenant)
	}
	return s.b.AppendOutbox(ctx, evs)
}

// ClaimOutbox claims up to limit unsent events, oldest first, for holder for
// the duration claim; another relay may claim them again after it. Publish
// them with their ID as message id, then MarkSent.
func (s *Store) ClaimOutbox(ctx context.Context, holder string, limit int, claim time.Duration) ([]OutboxEntry, error) {
	if holder == "" || limit <= 0 || claim <= 0 {
		return nil, errors.New("claim outbox: holder, limit and claim are required")
	}
	return s.b.ClaimOutbox(ctx, holder, limit, s.now().UTC(), claim)
}

// MarkSent marks events sent, by ID.
func (s *Store) MarkSent(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.b.MarkSent(ctx, ids)
}
