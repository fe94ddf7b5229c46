package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/store"
)

// step publishes what the relay holds, claiming a new batch when it holds
// nothing; more reports that the outbox may hold more right now.
func (r *Relay) step(ctx context.Context) (more bool, err error) {
	r.dropStale()
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

// dropStale gives up entries whose claim is about to expire: past it,
// another relay may claim and publish them, and only what the store hands
// out again is still unsent. Claiming waits for the expiry, so the dropped
// entries come back first and the stream keeps outbox order.
func (r *Relay) dropStale() {
	if len(r.pending) == 0 || time.Since(r.claimed) < r.cfg.Claim*3/4 {
		return
	}
	r.pending = nil
	r.holdUntil = r.claimed.Add(r.cfg.Claim)
	r.metrics.depth.Set(0)
}

func (r *Relay) claim(ctx context.Context) error {
	if time.Now().Before(r.holdUntil) {
		return nil
	}
	at := time.Now()
	es, err := r.store.ClaimOutbox(ctx, r.cfg.Instance, r.cfg.Batch, r.cfg.Claim)
	if err != nil {
		return fmt.Errorf("claim outbox: %w", err)
	}
	r.pending, r.claimed, r.full = es, at, len(es) == r.cfg.Batch
	r.metrics.depth.Set(float64(len(es)))
	return nil
}

// publishPending publishes the held entries in order and marks the
// acknowledged ones sent. It stops at the first failure and keeps the rest
// for the next try, while the claim lasts.
func (r *Relay) publishPending(ctx context.Context) error {
	var acked []string
	var err error
	for len(r.pending) > 0 {
		ev := r.pending[0].Event
		if err = r.publish(ctx, ev); errors.Is(err, ErrInvalidEvent) {
			// It can never be published; it comes back when its claim
			// expires, so an operator sees it in the log until it is fixed.
			r.cfg.Logger.Error("status relay: skipping an event that cannot be published", slog.String("id", ev.ID), slog.Any("err", err))
		} else if err != nil {
			break
		} else {
			acked = append(acked, ev.ID)
		}
		r.pending = r.pending[1:]
	}
	r.metrics.depth.Set(float64(len(r.pending)))
	if merr := r.store.MarkSent(context.WithoutCancel(ctx), acked...); merr != nil {
		// Unmarked entries are claimed and published again later; the
		// message id makes JetStream drop the copy.
		return errors.Join(err, fmt.Errorf("mark sent: %w", merr))
	}
	if errors.Is(err, ErrInvalidEvent) {
		return nil
	}
	return err
}

func (r *Relay) publish(ctx context.Context, ev store.StatusEvent) error {
	body, err := Encode(r.cfg.Instance, ev)
	if err != nil {
		r.metrics.failures.Inc()
		return err
	}
	msg := nats.NewMsg(Subject(ev.Tenant, ev.Kind))
	msg.Data = body
	msg.Header.Set("Content-Type", ContentType)
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	// A PubAck with Duplicate set also means the stream holds the event.
	if _, err := r.js.PublishMsg(pctx, msg, jetstream.WithMsgID(ev.ID)); err != nil {
		r.metrics.failures.Inc()
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	r.metrics.published.Inc()
	r.metrics.latency.Observe(time.Since(start).Seconds())
	return nil
}
