package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/cmkd-io/cmkd/events"
)

// Source is the webhook endpoint Event Grid pushes deliveries to.
type Source struct {
	cfg      Config
	auth     *authenticator
	log      *slog.Logger
	requests *prometheus.CounterVec
}

var _ events.Source = (*Source)(nil)

// New checks cfg, with defaults applied, and returns the Source.
func New(cfg Config) (*Source, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, auth: newAuthenticator(cfg.Auth, cfg.Logger), log: cfg.Logger, requests: newRequestCounter(cfg.Registerer)}, nil
}

// Name implements events.Source.
func (s *Source) Name() string { return "webhook" }

// Handler is the endpoint, handing events to h (unused in queue mode), for
// callers that serve it themselves.
func (s *Source) Handler(h events.Handler) http.Handler {
	return &endpoint{Source: s, handle: h}
}

// shutdownTimeout bounds how long Run waits for running requests.
const shutdownTimeout = 10 * time.Second

// Run serves the endpoint on Config.Listen until ctx ends, then lets
// running deliveries finish. It serves at most MaxConns connections at
// once and drops idle and slow ones (see Config).
func (s *Source) Run(ctx context.Context, h events.Handler) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webhook listen on %s: %w", s.cfg.Listen, err)
	}
	ln = netutil.LimitListener(ln, s.cfg.MaxConns)
	// No WriteTimeout: a delivery handled inline takes as long as its
	// handlers; Event Grid gives up on its side and retries.
	srv := &http.Server{
		Handler:           s.Handler(h),
		ReadHeaderTimeout: min(readHeaderTimeout, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
