package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/cmkd-io/cmkd/events"
)

// Middleware wraps an events.Handler with one cross-cutting concern. The
// worker applies the same chain to every source, so a source only decodes,
// hands over and settles (watermill's router middleware, in small).
type Middleware func(events.Handler) events.Handler

// Wrap returns h as the worker runs it for events from source: a panic is
// recovered and the delivery retried, every delivery's outcome (ack, retry,
// dead_letter, as events.Settle decides it) is counted and failures logged.
// Sources settle deliveries from the returned error with events.Settle.
func (w *Worker) Wrap(source string, h events.Handler) events.Handler {
	return chain(h, w.recoverPanics(source), w.observe(source))
}

// chain applies mws so that the first is the outermost.
func chain(h events.Handler, mws ...Middleware) events.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverPanics turns a handler's panic into an error, so the delivery is
// retried instead of the process dying with every other delivery in flight.
func (w *Worker) recoverPanics(source string) Middleware {
	// A series at 0 from the start, so that an alert on increase() sees the
	// first panic after a restart.
	w.metrics.panics.WithLabelValues(source)
	return func(next events.Handler) events.Handler {
		return func(ctx context.Context, ev events.Event) (err error) {
			defer func() {
				if p := recover(); p != nil {
					w.metrics.panics.WithLabelValues(source).Inc()
					w.log.Error("event handler panicked; the event will be retried", slog.String("source", source),
						slog.String("event_id", ev.ID), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
					err = fmt.Errorf("event %s: handler panicked: %v", ev.ID, p)
				}
			}()
			return next(ctx, ev)
		}
	}
}

// observe counts every delivery by source, type and verdict, times it, and
// logs the ones that are not acknowledged.
func (w *Worker) observe(source string) Middleware {
	return func(next events.Handler) events.Handler {
		return func(ctx context.Context, ev events.Event) error {
			start := time.Now()
			err := next(ctx, ev)
			verdict, delay := events.Settle(err)
			w.metrics.event(source, ev.Type, verdict, time.Since(start))
			switch verdict {
			case events.Retry:
				w.log.Warn("event not handled; it will be retried", slog.String("source", source),
					slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("key", ev.Key.String()),
					slog.Duration("delay", delay), slog.Any("err", err))
			case events.DeadLetter:
				w.log.Error("event cannot be handled; dead-lettering it", slog.String("source", source),
					slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.Any("err", err))
			}
			return err
		}
	}
}
