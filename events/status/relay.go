package status

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/store"
)

// errNotConnected stops publishing while the NATS connection is down, so
// that nothing piles up in the client's reconnect buffer.
var errNotConnected = errors.New("nats not connected")

// Relay publishes the store's outbox to JetStream, one Run per Relay.
type Relay struct {
	cfg     Config
	js      jetstream.JetStream
	kick    chan struct{}
	metrics *relayMetrics

	outboxHold // owned by Run
	needStream bool
}

// NewRelay returns a relay for st; Run starts it.
func NewRelay(st *store.Store, js jetstream.JetStream, cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newRelayMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	hold := outboxHold{store: st, sink: store.NATSSink, holder: cfg.Instance, batch: cfg.Batch, claim: cfg.Claim}
	return &Relay{cfg: cfg, js: js, kick: make(chan struct{}, 1), metrics: m, outboxHold: hold}, nil
}

// Kick tells the relay a new event was written, so it publishes now rather
// than at the next poll.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, then returns nil. It never gives up: while
// NATS is down it backs off and tries again, and the outbox keeps every
// event meanwhile.
func (r *Relay) Run(ctx context.Context) error {
	reconnected := r.js.Conn().StatusChanged(nats.CONNECTED)
	defer r.js.Conn().RemoveStatusListener(reconnected)
	r.needStream = r.cfg.CreateStream
	var backoff time.Duration
	for ctx.Err() == nil {
		more, err := r.step(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			backoff = r.wait(ctx, backoff, err, reconnected)
		case backoff > 0:
			r.cfg.Logger.Info("status relay: publishing again")
			backoff = 0
		case !more:
			r.idle(ctx)
		}
	}
	return nil
}

func (r *Relay) wait(ctx context.Context, backoff time.Duration, err error, reconnected <-chan nats.Status) time.Duration {
	backoff, d := nextBackoff(backoff, r.cfg.Backoff)
	r.cfg.Logger.Warn("status relay: retrying", slog.Duration("in", d), slog.Int("pending", len(r.pending)), slog.Any("err", err))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-reconnected:
	}
	return backoff
}

func (r *Relay) idle(ctx context.Context) {
	t := time.NewTimer(r.cfg.Interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.kick:
	case <-t.C:
	}
}
