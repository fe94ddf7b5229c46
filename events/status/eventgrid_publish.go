package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// gridEvent is a pending entry as the client sends it, with the size of
// its JSON in the request body.
type gridEvent struct {
	id   string
	ce   messaging.CloudEvent
	size int
}

// publishPending publishes the held entries in as few requests as the
// request limit allows, one after another, marking what Event Grid
// accepted after each request, so that a crash republishes at most one
// request's events. It stops at the first failure and keeps that entry and the
// rest for the next try, while the claim lasts: no request outlives
// three quarters of it, so none is in flight when another relay may take
// the entries.
func (r *EventGridRelay) publishPending(ctx context.Context) error {
	ctx, cancel := context.WithDeadline(ctx, r.claimed.Add(r.cfg.Claim*3/4))
	defer cancel()
	evs, err := r.encodePending(ctx)
	for err == nil && len(evs) > 0 {
		n := batchLen(evs, r.cfg.MaxRequestBytes)
		var done int
		done, err = r.publishBatch(ctx, evs[:n])
		evs, r.pending = evs[done:], r.pending[done:]
		if merr := r.markUnmarked(ctx); merr != nil {
			err = errors.Join(err, merr)
		}
	}
	r.metrics.depth.Set(float64(len(r.pending)))
	return err
}

// encodePending encodes the held entries, in order, and gives up those
// that can never be published: one the NATS Relay could not encode
// either, and one larger than a request may be. It drops those from
// pending.
func (r *EventGridRelay) encodePending(ctx context.Context) ([]gridEvent, error) {
	evs := make([]gridEvent, 0, len(r.pending))
	kept := make([]store.OutboxEntry, 0, len(r.pending))
	for i, e := range r.pending {
		ev, err := encodeGridEvent(e.Event, r.cfg.Instance)
		if err == nil && ev.size+2 > r.cfg.MaxRequestBytes {
			err = fmt.Errorf("its CloudEvent is %d bytes, over the %d a publish request may be", ev.size, r.cfg.MaxRequestBytes)
		}
		if err != nil {
			if gerr := r.giveUp(ctx, e.Event.ID, err); gerr != nil {
				r.pending = append(kept, r.pending[i:]...)
				return nil, gerr
			}
			continue
		}
		evs, kept = append(evs, ev), append(kept, e)
	}
	r.pending = kept
	return evs, nil
}

// encodeGridEvent makes the entry's CloudEvent from the very document the
// NATS Relay publishes, so that both carry the same attributes and data.
func encodeGridEvent(ev cmkd.StatusEvent, instance string) (gridEvent, error) {
	ev.Source = "cmkd/" + instance
	doc, err := ev.MarshalCloudEvent()
	if err != nil {
		return gridEvent{}, err
	}
	var ce messaging.CloudEvent
	if err := json.Unmarshal(doc, &ce); err != nil {
		return gridEvent{}, fmt.Errorf("read status event %s as a CloudEvent: %w", ev.ID, err)
	}
	// The client reads data as []byte and would send it base64-encoded
	// as data_base64; as json.RawMessage it goes out as the JSON it is.
	if b, ok := ce.Data.([]byte); ok {
		ce.Data = json.RawMessage(b)
	}
	body, err := json.Marshal(ce) // what the client writes into the batch
	if err != nil {
		return gridEvent{}, fmt.Errorf("encode status event %s: %w", ev.ID, err)
	}
	return gridEvent{id: ev.ID, ce: ce, size: len(body)}, nil
}

// batchLen is how many of evs, from the first, fit one request body of
// at most limit bytes: a JSON array of their documents. At least one
// (encodePending gave up those that fit none).
func batchLen(evs []gridEvent, limit int) int {
	size := 1 // "[" and, with each event, "," or "]"
	for i, e := range evs {
		size += e.size + 1
		if size > limit {
			return max(i, 1)
		}
	}
	return len(evs)
}

// publishBatch publishes evs in one request and reports how many of them,
// from the first, are done: published (then waiting in unmarked) or given
// up. A batch Event Grid refuses as a whole (400, 413) is split in two
// and each half published, so that one bad event costs only itself;
// refused alone, it is given up.
func (r *EventGridRelay) publishBatch(ctx context.Context, evs []gridEvent) (int, error) {
	err := r.send(ctx, evs)
	if err == nil {
		for _, e := range evs {
			r.unmarked = append(r.unmarked, e.id)
		}
		return len(evs), nil
	}
	if !refused(err) {
		return 0, err
	}
	if len(evs) == 1 {
		return 1, r.giveUp(ctx, evs[0].id, err)
	}
	half := len(evs) / 2
	done, err := r.publishBatch(ctx, evs[:half])
	if err != nil || done < half {
		return done, err
	}
	rest, err := r.publishBatch(ctx, evs[half:])
	return half + rest, err
}

// send makes one publish request. Errors are classified for the metric
// and for Run: errAuth for refused credentials.
func (r *EventGridRelay) send(ctx context.Context, evs []gridEvent) error {
	ces := make([]messaging.CloudEvent, len(evs))
	size := 1
	for i, e := range evs {
		ces[i], size = e.ce, size+e.size+1
	}
	start := time.Now()
	_, err := r.client.PublishCloudEvents(ctx, ces, nil)
	if err == nil {
		r.metrics.published.Add(float64(len(evs)))
		r.metrics.latency.Observe(time.Since(start).Seconds())
		r.metrics.requests.Observe(float64(size))
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err // Run is ending: not Event Grid's failure
	}
	cause := causeUnavailable
	switch {
	case refused(err):
		cause = causeRefused
	case statusOf(err) == http.StatusUnauthorized || statusOf(err) == http.StatusForbidden:
		cause, err = causeAuth, fmt.Errorf("%w: %w", errAuth, err)
	}
	r.metrics.failures.WithLabelValues(cause).Inc()
	return fmt.Errorf("publish %d events to event grid: %w", len(evs), err)
}

// statusOf is the HTTP status of Event Grid's answer, 0 if none came (a
// network error, a timeout).
func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// refused reports whether Event Grid refused the request for its content:
// a malformed or invalid event (400) or a body over its limit (413).
func refused(err error) bool {
	s := statusOf(err)
	return s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge
}

// giveUp records that the entry can never be published to this sink, so
// that it no longer holds up its tenant's later entries.
func (r *EventGridRelay) giveUp(ctx context.Context, id string, why error) error {
	r.cfg.Logger.Error("event grid relay: giving up an event Event Grid can never accept; NATS still has it",
		slog.String("id", id), slog.Any("err", why))
	if err := r.store.GiveUpFor(context.WithoutCancel(ctx), r.cfg.Sink, why.Error(), id); err != nil {
		r.metrics.failures.WithLabelValues(causeStore).Inc()
		return fmt.Errorf("give up %s: %w", id, err)
	}
	r.metrics.givenUp.Inc()
	return nil
}
