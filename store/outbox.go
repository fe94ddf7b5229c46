package store

import (
	"context"
	"errors"
	"fmt"
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

// NATSSink names the sink whose delivery state is the outbox's own
// columns (claimed_by, claim_until, attempts, sent_at): the JetStream
// relay's, which was the only sink before sinks had names. Keeping its
// state where it was lets existing databases migrate without publishing
// anything again, and keeps ClaimOutbox and MarkSent as they were.
const NATSSink = "nats"

// Every other sink keeps its delivery state per entry in a table of its
// own, so one sink's outage never holds up another: an entry is done when
// every configured sink has it.
//
// Where a sink starts: at its first claim it registers, and from then on
// every entry written gets a delivery row for it in the transaction that
// writes the entry. Entries written before are not delivered to it: the
// outbox is never pruned, so starting at the beginning would replay a
// deployment's whole history — years of seals and rewraps, most of them
// stale — to subscribers that just subscribed; that history stays
// readable from the JetStream stream. Registration waits for transactions
// writing to the outbox to end (see the backends), so an entry is either
// before the start or delivered: none falls between.

// ValidSinkName reports whether name can name a sink: 1 to 64 lower-case
// letters, digits, '-' and '_'. Sinks are configured, not user input,
// but the name is stored and logged.
func ValidSinkName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// ClaimOutboxFor is ClaimOutbox for the named sink: it claims up to limit
// entries the sink has not been sent, oldest first, for holder, for the
// duration claim. The per-tenant order rule holds per sink: an entry is not
// claimable while an earlier unsent entry of its tenant is held by another
// claim of the same sink. The first claim of a sink registers it (see
// above). NATSSink is ClaimOutbox.
func (s *Store) ClaimOutboxFor(ctx context.Context, sink, holder string, limit int, claim time.Duration) ([]OutboxEntry, error) {
	if sink == NATSSink {
		return s.ClaimOutbox(ctx, holder, limit, claim)
	}
	if !ValidSinkName(sink) {
		return nil, fmt.Errorf("claim outbox: invalid sink name %q", sink)
	}
	if holder == "" || limit <= 0 || claim <= 0 {
		return nil, errors.New("claim outbox: holder, limit and claim are required")
	}
	return s.b.ClaimOutboxFor(ctx, sink, holder, limit, s.now().UTC(), claim)
}

// RegisterOutboxSink registers the named sink, as its first claim would,
// if it is not registered yet: every entry written from then on is the
// sink's. A deployment that adds a sink can register it before the relay
// first runs, so that nothing written meanwhile passes it by.
func (s *Store) RegisterOutboxSink(ctx context.Context, sink string) error {
	if sink == NATSSink {
		return nil
	}
	if !ValidSinkName(sink) {
		return fmt.Errorf("register outbox sink: invalid sink name %q", sink)
	}
	_, err := s.b.ClaimOutboxFor(ctx, sink, "register", 0, s.now().UTC(), time.Nanosecond)
	return err
}

// MarkSentFor marks entries, by event ID, sent to the named sink.
func (s *Store) MarkSentFor(ctx context.Context, sink string, ids ...string) error {
	if sink == NATSSink {
		return s.MarkSent(ctx, ids...)
	}
	return s.markFor(ctx, sink, "", ids)
}

// GiveUpFor marks entries done for the named sink without their having
// been delivered — an event the sink can never accept — and records why,
// so they no longer hold up their tenants' later entries. The NATS sink
// has nowhere to record it, and refuses.
func (s *Store) GiveUpFor(ctx context.Context, sink, reason string, ids ...string) error {
	if sink == NATSSink {
		return errors.New("give up on outbox entries: the nats sink cannot record it")
	}
	if reason == "" {
		return errors.New("give up on outbox entries: a reason is required")
	}
	return s.markFor(ctx, sink, reason, ids)
}

func (s *Store) markFor(ctx context.Context, sink, reason string, ids []string) error {
	if !ValidSinkName(sink) {
		return fmt.Errorf("mark sent: invalid sink name %q", sink)
	}
	if len(ids) == 0 {
		return nil
	}
	return s.b.MarkSentFor(ctx, sink, ids, s.now().UTC(), reason)
}

// OutboxPending counts the entries the named sink has not been sent (or
// given up), claimed or not: for a metric of its backlog. A sink that never
// claimed has none.
func (s *Store) OutboxPending(ctx context.Context, sink string) (int64, error) {
	if sink != NATSSink && !ValidSinkName(sink) {
		return 0, fmt.Errorf("outbox pending: invalid sink name %q", sink)
	}
	return s.b.OutboxPending(ctx, sink)
}
