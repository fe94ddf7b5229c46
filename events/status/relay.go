package status

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/store"
)

// Config configures a Relay. Zero fields take the Default… values.
type Config struct {
	// Instance names this process: the CloudEvent source is cmkd/<Instance>.
	Instance string
	Stream   string
	MaxAge   time.Duration
	Replicas int
	// Duplicates is JetStream's duplicate window; keep it longer than Claim.
	Duplicates time.Duration
	// CreateStream creates or updates the stream when the relay starts.
	CreateStream bool
	// Batch is how many outbox entries are claimed at once, for Claim.
	Batch int
	Claim time.Duration
	// Interval is the outbox poll when idle; Kick skips the wait.
	Interval time.Duration
	// Backoff is the first wait after a failed publish; it doubles to 10 s.
	Backoff    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Claim == 0 {
		c.Claim = DefaultClaim
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Instance == "":
		return errors.New("status config: Instance is required")
	case c.Duplicates != 0 && c.Claim != 0 && c.Duplicates <= c.Claim:
		return errors.New("status config: Duplicates must be longer than Claim, or a retried publish may be doubled")
	}
	return nil
}

// Relay publishes the outbox to JetStream.
type Relay struct {
	cfg     Config
	store   *store.Store
	js      jetstream.JetStream
	kick    chan struct{}
	metrics *relayMetrics
}

// NewRelay returns a relay; Run starts it.
func NewRelay(s *store.Store, js jetstream.JetStream, cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newRelayMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, store: s, js: js, kick: make(chan struct{}, 1), metrics: m}, nil
}

// Kick asks the relay to look at the outbox now.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. It never gives up: while NATS is down it
// backs off and tries again, and the outbox keeps every event meanwhile.
func (r *Relay) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		if r.cfg.CreateStream {
			if _, err := EnsureStream(ctx, r.js, r.cfg); err != nil {
				backoff = r.wait(ctx, backoff, err)
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
		}
		break
	}
	backoff = 0
	for ctx.Err() == nil {
		n, err := r.publishBatch(ctx)
		switch {
		case err != nil:
			backoff = r.wait(ctx, backoff, err)
		case n == r.cfg.Batch:
			backoff = 0 // more may be waiting
		default:
			backoff = 0
			r.idle(ctx)
		}
	}
	return nil
}

// publishBatch claims and publishes one batch; it returns how many entries
// were claimed. It stops at the first failure: the rest stay claimed until
// their claim expires, then this or another relay takes them again.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	entries, err := r.store.ClaimOutbox(ctx, r.cfg.Instance, r.cfg.Batch, r.cfg.Claim)
	if err != nil {
		return 0, err
	}
	r.metrics.depth.Set(float64(len(entries)))
	var sent []string
	defer func() {
		if len(sent) > 0 {
			if err := r.store.MarkSent(context.WithoutCancel(ctx), sent...); err != nil {
				r.cfg.Logger.Error("mark status events sent", slog.Any("err", err))
			}
		}
	}()
	for _, e := range entries {
		if err := r.publish(ctx, e.Event); err != nil {
			return len(entries), err
		}
		sent = append(sent, e.Event.ID)
	}
	return len(entries), nil
}

func (r *Relay) publish(ctx context.Context, ev store.StatusEvent) error {
	body, err := Encode(r.cfg.Instance, ev)
	if err != nil {
		return err
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := &natsMsg{subject: Subject(ev.Tenant, ev.Kind), body: body}
	_, err = r.js.PublishMsg(pctx, msg.build(), jetstream.WithMsgID(ev.ID))
	if err != nil {
		r.metrics.failures.Inc()
		return err
	}
	r.metrics.published.Inc()
	r.metrics.latency.Observe(time.Since(start).Seconds())
	return nil
}

func (r *Relay) wait(ctx context.Context, backoff time.Duration, err error) time.Duration {
	backoff = min(max(backoff*2, r.cfg.Backoff), maxBackoff)
	d := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
	r.cfg.Logger.Warn("status relay: retrying", slog.Duration("in", d), slog.Any("err", err))
	select {
	case <-ctx.Done():
	case <-time.After(d):
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
