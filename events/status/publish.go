package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/failpoint"
)

// step publishes what the relay holds, claiming a new batch when it holds
// nothing; more reports that the outbox may hold more right now.
func (r *Relay) step(ctx context.Context) (more bool, err error) {
	r.dropStale()
	if err := r.markUnmarked(ctx); err != nil {
		return false, err
	}
	if !r.js.Conn().IsConnected() {
		r.metrics.failures.Inc()
		return false, errNotConnected
	}
	if r.needStream {
		if _, err := EnsureStream(ctx, r.js, r.cfg); err != nil {
			return false, err
		}
		r.needStream = false
	}
	if len(r.pending) == 0 {
		if err := r.claim(ctx); err != nil || len(r.pending) == 0 {
			return false, err
		}
	}
	err = r.publishPending(ctx)
	if errors.Is(err, jetstream.ErrNoStreamResponse) && r.cfg.CreateStream {
		r.needStream = true // the server lost the stream with its storage
	}
	return r.full && len(r.pending) == 0, err
}

// dropStale gives up entries whose claim is about to expire (see
// outboxHold.dropStaleClaims).
func (r *Relay) dropStale() {
	if r.dropStaleClaims() {
		r.metrics.depth.Set(0)
	}
}

func (r *Relay) claim(ctx context.Context) error {
	n, err := r.claimBatch(ctx)
	if err != nil {
		return fmt.Errorf("claim outbox: %w", err)
	}
	if n > 0 {
		failpoint.Hit(failpoint.OutboxClaimed)
	}
	r.metrics.depth.Set(float64(len(r.pending)))
	return nil
}

// publishPending publishes the held entries and marks the acknowledged
// ones sent. They go out pipelined — all sent, then the acks awaited in
// order — because one round trip per event made a key with a thousand
// tenants take seconds to announce its seals. It stops at the first failure
// and keeps that entry and the rest for the next try, while the claim lasts.
// Order: the stream receives the events in outbox order; only when a publish
// fails can a retried event land after later ones (the message id keeps it
// from landing twice).
func (r *Relay) publishPending(ctx context.Context) error {
	futures := r.sendPending()
	var acked []string
	var err error
	deadline := time.NewTimer(publishTimeout)
	defer deadline.Stop()
	for i, f := range futures {
		if err = r.awaitAck(ctx, f, deadline.C); err != nil {
			r.pending = r.pending[i:]
			break
		}
		if f.future != nil {
			acked = append(acked, f.id)
		}
	}
	if err == nil {
		r.pending = nil
	}
	r.metrics.depth.Set(float64(len(r.pending)))
	if len(acked) > 0 {
		failpoint.Hit(failpoint.RelayPublished)
	}
	r.unmarked = append(r.unmarked, acked...)
	if merr := r.markUnmarked(ctx); merr != nil {
		return errors.Join(err, merr)
	}
	return err
}

// markUnmarked marks the published entries sent (outboxHold.markSent).
// Should this process die first, the message id makes JetStream drop the
// copy another relay publishes.
func (r *Relay) markUnmarked(ctx context.Context) error {
	if err := r.markSent(ctx); err != nil {
		r.metrics.failures.Inc()
		return fmt.Errorf("mark sent: %w", err)
	}
	return nil
}

// sent is one pending entry on its way: a future to await, or nil for an
// entry that can never be published (skipped), or an error to report.
type sent struct {
	id     string
	future jetstream.PubAckFuture
	err    error
	start  time.Time
}

func (r *Relay) sendPending() []sent {
	out := make([]sent, 0, len(r.pending))
	for _, e := range r.pending {
		s := r.send(e.Event)
		out = append(out, s)
		if s.err != nil {
			break // the rest go after it, on the next try
		}
	}
	return out
}

func (r *Relay) send(ev cmkd.StatusEvent) sent {
	s := sent{id: ev.ID, start: time.Now()}
	ev.Source = "cmkd/" + r.cfg.Instance
	body, err := ev.MarshalCloudEvent()
	if err != nil {
		// It can never be published; it comes back when its claim expires,
		// so an operator sees it in the log until it is fixed.
		r.metrics.failures.Inc()
		r.cfg.Logger.Error("status relay: skipping an event that cannot be published", slog.String("id", ev.ID), slog.Any("err", err))
		return s
	}
	msg := nats.NewMsg(ev.Subject())
	msg.Data = body
	msg.Header.Set("Content-Type", cmkd.StatusContentType)
	// No retries inside the client: they run on timers of their own and
	// would reorder events; the relay's loop retries, in order.
	if s.future, err = r.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ID), jetstream.WithRetryAttempts(0)); err != nil {
		r.metrics.failures.Inc()
		s.err = fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	return s
}

// awaitAck waits for s's PubAck. A PubAck with Duplicate set also means
// the stream holds the event.
func (r *Relay) awaitAck(ctx context.Context, s sent, deadline <-chan time.Time) error {
	if s.future == nil { // not sent: failed (s.err) or skipped (nil)
		return s.err
	}
	select {
	case <-s.future.Ok():
		r.metrics.published.Inc()
		r.metrics.latency.Observe(time.Since(s.start).Seconds())
		return nil
	case err := <-s.future.Err():
		r.metrics.failures.Inc()
		return fmt.Errorf("publish %s: %w", s.id, err)
	case <-deadline:
		r.metrics.failures.Inc()
		return fmt.Errorf("publish %s: no ack within %s", s.id, publishTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
