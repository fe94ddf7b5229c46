package natsq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/events"
)

// process hands one message's events to h and settles it exactly once.
func (s *Source) process(ctx context.Context, h events.Handler, msg jetstream.Msg) {
	s.m.inFlight.Inc()
	defer s.m.inFlight.Dec()
	md, err := msg.Metadata()
	if err != nil {
		s.settle(msg, outcomeLost, msg.Term(), slog.String("reason", "no metadata"))
		return
	}
	if md.NumDelivered > uint64(s.cfg.MaxDeliver) { // #nosec G115 -- Config.Validate keeps MaxDeliver at least 1
		s.deadLetter(ctx, msg, md, kindExhausted, "max deliveries exceeded")
		return
	}
	err = s.handle(ctx, h, msg)
	verdict, asked := events.Settle(err)
	switch {
	case verdict == events.Ack:
		s.settle(msg, outcomeAck, msg.Ack())
	case verdict == events.DeadLetter && errors.Is(err, events.ErrMalformed):
		s.deadLetter(ctx, msg, md, kindMalformed, err.Error())
	case verdict == events.DeadLetter:
		s.deadLetter(ctx, msg, md, kindRejected, err.Error())
	case md.NumDelivered >= uint64(s.cfg.MaxDeliver): // #nosec G115 -- Config.Validate keeps MaxDeliver at least 1
		s.deadLetter(ctx, msg, md, kindExhausted, fmt.Sprintf("failed %d deliveries: %v", md.NumDelivered, err))
	default:
		delay := s.retryDelay(asked, md.NumDelivered)
		s.settle(msg, outcomeNak, msg.NakWithDelay(delay),
			slog.Uint64("delivery", md.NumDelivered), slog.Duration("delay", delay), slog.Any("err", err))
	}
}

// handle decodes the body and hands its events to h in order, extending
// the delivery's ack deadline while they run.
func (s *Source) handle(ctx context.Context, h events.Handler, msg jetstream.Msg) error {
	res, err := s.cfg.Decoder.Decode(msg.Data())
	if err != nil {
		return err
	}
	stop := s.keepAlive(msg)
	defer stop()
	for _, ev := range res.Events {
		if err := h(ctx, ev); err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
	}
	return nil
}

// keepAlive marks the message in progress every half AckWait so that a
// slow handler does not get its message redelivered to another replica.
func (s *Source) keepAlive(msg jetstream.Msg) (stop func()) {
	t := time.NewTicker(s.cfg.AckWait / 2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// retryDelay is the delay the handler asked for, or the configured
// back-off for the delivery count.
func (s *Source) retryDelay(asked time.Duration, delivered uint64) time.Duration {
	if asked > 0 {
		return asked
	}
	// Counted in uint64, so that no delivery count can overflow an int.
	i := min(max(delivered, 1)-1, uint64(len(s.cfg.Backoff)-1)) // #nosec G115 -- the defaults keep Backoff non-empty
	return s.cfg.Backoff[i]
}

// settle records how a message was settled; err is the settle call's.
func (s *Source) settle(msg jetstream.Msg, outcome string, err error, attrs ...any) {
	if err != nil {
		s.m.messages.WithLabelValues(outcomeLost).Inc()
		s.log.Error("natsq: settle message", append(attrs, slog.String("outcome", outcome), slog.Any("err", err))...)
		return
	}
	s.m.messages.WithLabelValues(outcome).Inc()
	if outcome != outcomeAck {
		s.log.Warn("natsq: message not handled", append(attrs, slog.String("outcome", outcome), slog.String("subject", msg.Subject()))...)
	}
}
