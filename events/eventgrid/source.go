package eventgrid

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/events"
)

// Source pulls events from one namespace topic subscription.
type Source struct {
	cfg     Config
	client  *aznamespaces.ReceiverClient
	metrics *metrics
	log     *slog.Logger
	acks    *acker
}

// New checks cfg and builds the receiver client; it does not connect.
func New(cfg Config) (*Source, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventgrid source config: %w", err)
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("eventgrid receiver: %w", err)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Topic, cfg.Subscription)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(slog.String("topic", cfg.Topic), slog.String("subscription", cfg.Subscription))
	s := &Source{cfg: cfg, client: client, metrics: m, log: log}
	s.acks = newAcker(s)
	return s, nil
}

func newClient(cfg Config) (*aznamespaces.ReceiverClient, error) {
	opts := &aznamespaces.ReceiverClientOptions{}
	if cfg.RootCAs != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
		opts.Transport = &http.Client{Transport: tr}
	}
	if cfg.Key != "" {
		return aznamespaces.NewReceiverClientWithSharedKeyCredential(cfg.Endpoint, cfg.Topic, cfg.Subscription,
			azcore.NewKeyCredential(cfg.Key), opts)
	}
	return aznamespaces.NewReceiverClient(cfg.Endpoint, cfg.Topic, cfg.Subscription, cfg.Credential, opts)
}

// Name implements events.Source.
func (s *Source) Name() string { return "eventgrid" }

// Run receives events and hands them to h until ctx ends. Then it stops
// receiving, lets running handlers finish (cancelling them after
// ShutdownTimeout) and settles them, and returns nil. Receive failures are
// logged and retried with backoff; they never end Run.
func (s *Source) Run(ctx context.Context, h events.Handler) error {
	// Handlers and settling outlive ctx so that shutdown drains instead of
	// abandoning locked events.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	pause := newPause()
	for {
		n := acquire(ctx, slots, s.cfg.MaxEvents)
		if n == 0 {
			break
		}
		got, err := s.receive(ctx, n)
		for range n - len(got) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.metrics.receiveErrs.Inc()
			s.log.Warn("eventgrid receive failed", slog.Any("err", err))
			if !pause.wait(ctx) {
				break
			}
			continue
		}
		pause.reset()
		for _, d := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				s.deliver(work, h, d)
			}()
		}
	}
	stop := time.AfterFunc(s.cfg.ShutdownTimeout, cancelWork)
	defer stop.Stop()
	wg.Wait()
	s.acks.flush()
	return nil
}

// acquire takes at least one in-flight slot, blocking, and then as many more
// as are free, up to max. It returns 0 when ctx ends first.
func acquire(ctx context.Context, slots chan struct{}, max int) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < max {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// pause is the jittered exponential backoff between failed receives.
type pause struct{ next time.Duration }

const (
	pauseMin = time.Second
	pauseMax = 30 * time.Second
)

func newPause() *pause { return &pause{next: pauseMin} }

func (p *pause) reset() { p.next = pauseMin }

// wait sleeps for the current backoff; false if ctx ended meanwhile.
func (p *pause) wait(ctx context.Context) bool {
	d := p.next/2 + rand.N(p.next/2+1) // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
	p.next = min(2*p.next, pauseMax)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
