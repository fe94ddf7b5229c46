package natsq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/events"
)

// Source consumes CMKD_EVENTS and hands each event to the handler.
type Source struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
	m   *metrics
	// lastDelivery is the last delivery of a message the consumer grants:
	// a dead letter that fails on it is not tried again.
	lastDelivery atomic.Uint64
}

// New returns a Source for cfg, with defaults applied.
func New(js jetstream.JetStream, cfg Config) (*Source, error) {
	if js == nil {
		return nil, errors.New("natsq: JetStream is required")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Source{js: js, cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registerer)}, nil
}

// Name implements events.Source.
func (s *Source) Name() string { return "queue" }

// Run consumes, handing events to h, until ctx ends; then it stops
// fetching, waits up to DrainTimeout for running handlers and returns.
// Unsettled messages are redelivered, to this or another replica, after
// AckWait.
func (s *Source) Run(ctx context.Context, h events.Handler) error {
	cons, err := s.consumer(ctx)
	if err != nil {
		return err
	}
	last := uint64(s.cfg.MaxDeliver + 1) // #nosec G115 -- Config.Validate keeps MaxDeliver at least 1
	if ci := cons.CachedInfo(); ci != nil && ci.Config.MaxDeliver > 0 {
		last = uint64(ci.Config.MaxDeliver)
	}
	s.lastDelivery.Store(last)
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.MaxInFlight))
	if err != nil {
		return fmt.Errorf("natsq: consume %s: %w", s.cfg.Stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.cfg.MaxInFlight)
	for {
		sem <- struct{}{}
		msg, err := it.Next()
		if err != nil {
			<-sem
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				// Heartbeat loss and similar are reported but not fatal: the
				// iterator reconnects. Pause so a persistent error cannot spin.
				s.log.Warn("natsq: next message", slog.Any("err", err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.process(hctx, h, msg)
		}()
	}
	s.drain(&wg, cancelHandlers)
	return nil
}

// drain waits for running handlers, cancelling them after DrainTimeout.
func (s *Source) drain(wg *sync.WaitGroup, cancel context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.DrainTimeout):
		cancel()
		<-done
	}
}

// consumer creates the stream, dead-letter stream and consumer when
// allowed, else binds to the existing consumer.
func (s *Source) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if !s.cfg.CreateStream {
		c, err := s.js.Consumer(ctx, s.cfg.Stream, s.cfg.Durable)
		if err != nil {
			return nil, fmt.Errorf("natsq: consumer %s/%s: %w", s.cfg.Stream, s.cfg.Durable, err)
		}
		return c, nil
	}
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: s.cfg.Stream, Subjects: s.cfg.Subjects, Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		return nil, fmt.Errorf("natsq: create stream %s: %w", s.cfg.Stream, err)
	}
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: s.cfg.DLQStream, Subjects: []string{s.cfg.DLQSubject},
	}); err != nil {
		return nil, fmt.Errorf("natsq: create stream %s: %w", s.cfg.DLQStream, err)
	}
	c, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
		Durable:   s.cfg.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   s.cfg.AckWait,
		// One delivery more than we handle: the extra one only dead-letters,
		// so a message whose last attempt was lost to a crash is not
		// stranded.
		MaxDeliver: s.cfg.MaxDeliver + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsq: create consumer %s/%s: %w", s.cfg.Stream, s.cfg.Durable, err)
	}
	return c, nil
}
