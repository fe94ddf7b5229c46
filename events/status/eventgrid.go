package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/store"
)

// EventGridRelay publishes the store's outbox to an Event Grid topic, one
// Run per relay. It keeps its own delivery state in the outbox
// (EventGridConfig.Sink), so it runs beside the NATS Relay on the same
// store and neither's outage holds up the other.
//
// Each entry goes out as the CloudEvent the NATS Relay publishes: the same
// document (cmkd.StatusEvent.MarshalCloudEvent), read into the client's
// messaging.CloudEvent, so id, type, source, subject, time, dataschema and
// data are identical on both.
//
// Order: a tenant's entries are claimed in write order and published in
// order, a batch's requests one after another, stopping at the first
// failure. Two exceptions, both logged, counted
// (cmkd_status_eventgrid_given_up_total) and given up for this sink only
// (store.GiveUpFor): an event whose document alone exceeds the request
// limit, and one Event Grid refuses (400) when published alone. Neither
// could ever be published, so holding the tenant's later events behind it
// would stop that tenant's events on the topic for good; a subscriber
// misses that one event instead, and the NATS stream still holds it.
type EventGridRelay struct {
	cfg     EventGridConfig
	client  *azeventgrid.Client
	kick    chan struct{}
	metrics *eventGridMetrics

	outboxHold // owned by Run
}

// errAuth marks a publish Event Grid refused for the credentials (401,
// 403): a configuration error, retried after AuthBackoff.
var errAuth = errors.New("event grid refused the credentials")

// NewEventGridRelay returns a relay from st to the topic client publishes
// to; Run starts it. The client's own retry policy applies to each
// request (azcore's default: 3 retries on 5xx, 429 and network errors);
// the relay retries after that, in order, for as long as it takes.
func NewEventGridRelay(st *store.Store, client *azeventgrid.Client, cfg EventGridConfig) (*EventGridRelay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newEventGridMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	hold := outboxHold{store: st, sink: cfg.Sink, holder: cfg.Instance, batch: cfg.Batch, claim: cfg.Claim}
	return &EventGridRelay{cfg: cfg, client: client, kick: make(chan struct{}, 1), metrics: m, outboxHold: hold}, nil
}

// Kick tells the relay a new event was written, so it publishes now rather
// than at the next poll.
func (r *EventGridRelay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, then returns nil. It never gives up: while
// Event Grid fails it backs off and tries again, and the outbox keeps
// every event meanwhile.
func (r *EventGridRelay) Run(ctx context.Context) error {
	var backoff time.Duration
	for ctx.Err() == nil {
		more, err := r.step(ctx)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errAuth):
			r.cfg.Logger.Error("event grid relay: Event Grid refuses the credentials; check the topic key or the identity's role (EventGrid Data Sender)",
				slog.Duration("retry_in", r.cfg.AuthBackoff), slog.Any("err", err))
			sleep(ctx, r.cfg.AuthBackoff, nil)
		case err != nil:
			backoff = r.wait(ctx, backoff, err)
		case backoff > 0:
			r.cfg.Logger.Info("event grid relay: publishing again")
			backoff = 0
		case !more:
			sleep(ctx, r.cfg.Interval, r.kick)
		}
	}
	return nil
}

func (r *EventGridRelay) wait(ctx context.Context, backoff time.Duration, err error) time.Duration {
	backoff, d := nextBackoff(backoff, r.cfg.Backoff)
	r.cfg.Logger.Warn("event grid relay: retrying", slog.Duration("in", d), slog.Int("pending", len(r.pending)), slog.Any("err", err))
	sleep(ctx, d, nil)
	return backoff
}

// sleep waits d, or until ctx ends or wake (nil: never) receives.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// step publishes what the relay holds, claiming a new batch when it holds
// nothing; more reports that the outbox may hold more right now.
func (r *EventGridRelay) step(ctx context.Context) (more bool, err error) {
	r.dropStale()
	if err := r.markUnmarked(ctx); err != nil {
		return false, err
	}
	if len(r.pending) == 0 {
		if err := r.claim(ctx); err != nil || len(r.pending) == 0 {
			return false, err
		}
	}
	err = r.publishPending(ctx)
	return r.full && len(r.pending) == 0, err
}

// dropStale gives up entries whose claim is about to run out, as the NATS
// Relay does (outboxHold.dropStaleClaims).
func (r *EventGridRelay) dropStale() {
	if r.dropStaleClaims() {
		r.metrics.depth.Set(0)
	}
}

func (r *EventGridRelay) claim(ctx context.Context) error {
	if _, err := r.claimBatch(ctx); err != nil {
		r.metrics.failures.WithLabelValues(causeStore).Inc()
		return fmt.Errorf("claim outbox: %w", err)
	}
	r.metrics.depth.Set(float64(len(r.pending)))
	if n, err := r.store.OutboxPending(ctx, r.cfg.Sink); err == nil {
		r.metrics.pending.Set(float64(n))
	}
	return nil
}

// markUnmarked marks the published entries sent; see Relay.markUnmarked.
// Should this process die first, their claims run out and another relay
// publishes them again: Event Grid has no duplicate window, so
// subscribers see that copy (at least once; they deduplicate by id).
func (r *EventGridRelay) markUnmarked(ctx context.Context) error {
	if err := r.markSent(ctx); err != nil {
		r.metrics.failures.WithLabelValues(causeStore).Inc()
		return fmt.Errorf("mark sent: %w", err)
	}
	return nil
}
