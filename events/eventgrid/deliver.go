package eventgrid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/events"
)

// settleTimeout bounds one settle call; settling must go on after Run's
// context ended, so it has its own deadline.
const settleTimeout = 30 * time.Second

// deliver decodes, hands to h and settles one delivery.
func (s *Source) deliver(ctx context.Context, h events.Handler, d delivery) {
	start := time.Now()
	s.metrics.inFlight.Inc()
	defer func() {
		s.metrics.inFlight.Dec()
		s.metrics.duration.Observe(time.Since(start).Seconds())
	}()
	log := s.log.With(slog.Int("delivery_count", d.deliveryCount))
	ev, relevant, err := s.cfg.Decoder.DecodeCloudEvent(d.raw)
	switch {
	case err != nil:
		log.Warn("eventgrid event malformed, rejecting", slog.Any("err", err))
		s.settle(ctx, opReject, d, 0, outcomeMalformed)
	case !relevant:
		s.settle(ctx, opAck, d, 0, outcomeIgnored)
	default:
		log = log.With(slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("key", ev.Key.String()))
		s.finish(ctx, log, d, s.handle(ctx, h, d.token, ev))
	}
}

// finish settles a handled delivery as events.Settle says. The worker has
// logged the handler's failure already.
func (s *Source) finish(ctx context.Context, log *slog.Logger, d delivery, err error) {
	switch verdict, asked := events.Settle(err); verdict {
	case events.Ack:
		s.settle(ctx, opAck, d, 0, outcomeHandled)
	case events.DeadLetter:
		s.settle(ctx, opReject, d, 0, outcomeRejected)
	default:
		delay := backoff(s.cfg.ReleaseDelay, d.deliveryCount, asked, asked > 0)
		log.Debug("eventgrid releasing for redelivery", slog.Duration("delay", delay))
		s.settle(ctx, opRelease, d, delay, outcomeRetried)
	}
}

// handle runs the handler while a renewer keeps the lock.
func (s *Source) handle(ctx context.Context, h events.Handler, token string, ev events.Event) error {
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renew(renewCtx, token)
	}()
	defer func() {
		stopRenew()
		<-renewed
	}()
	return h(ctx, ev)
}

// renew renews the lock every LockRenew until ctx ends.
func (s *Source) renew(ctx context.Context, token string) {
	t := time.NewTicker(s.cfg.LockRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := s.client.RenewEventLocks(ctx, []string{token}, nil)
		if err == nil && len(resp.FailedLockTokens) == 0 {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.metrics.renewalFails.Inc()
		s.log.Warn("eventgrid lock renewal failed; the event may be delivered again", slog.Any("err", errors.Join(err, failure(resp.FailedLockTokens))))
	}
}

// Settle operations.
const (
	opAck     = "acknowledge"
	opRelease = "release"
	opReject  = "reject"
)

// settle settles one delivery; acknowledgements go to the batching acker.
// A failure is logged and counted; the event then comes back after its lock
// expires, which handlers tolerate.
func (s *Source) settle(ctx context.Context, op string, d delivery, delay time.Duration, outcome string) {
	if op == opAck {
		s.metrics.deliveries.WithLabelValues(outcome).Inc()
		s.acks.add(d.token)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	tokens := []string{d.token}
	var failed []aznamespaces.FailedLockToken
	var err error
	switch op {
	case opReject:
		var r aznamespaces.RejectEventsResponse
		r, err = s.client.RejectEvents(ctx, tokens, nil)
		failed = r.FailedLockTokens
	case opRelease:
		v, _ := releaseDelay(delay)
		var r aznamespaces.ReleaseEventsResponse
		r, err = s.client.ReleaseEvents(ctx, tokens, &aznamespaces.ReleaseEventsOptions{ReleaseDelayInSeconds: &v})
		failed = r.FailedLockTokens
	}
	s.metrics.deliveries.WithLabelValues(outcome).Inc()
	if err = errors.Join(err, failure(failed)); err != nil {
		s.metrics.settleFails.WithLabelValues(op).Inc()
		s.log.Warn("eventgrid settle failed; the event will be delivered again", slog.String("op", op), slog.Any("err", err))
	}
}

// failure turns per-token failures into an error, nil if there are none.
func failure(failed []aznamespaces.FailedLockToken) error {
	var errs []error
	for _, f := range failed {
		code := ""
		if f.Error != nil && f.Error.Code != nil {
			code = *f.Error.Code
		}
		errs = append(errs, fmt.Errorf("lock token %s: %v", code, f.Error))
	}
	return errors.Join(errs...)
}
