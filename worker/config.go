package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// Defaults for Config.
const (
	DefaultProbeInterval   = 60 * time.Second
	DefaultConcurrency     = 8
	DefaultLeaseTTL        = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Runner is a long-running part the worker starts and stops with itself:
// the status relay.
type Runner interface {
	Run(ctx context.Context) error
}

// Config configures a Worker. Zero fields take the Default… values.
type Config struct {
	// Store and Reconciler are required.
	Store      *store.Store
	Reconciler *handlers.Reconciler
	// Instance names this replica: lease holder and status event source.
	Instance string
	// ProbeInterval is how often every key in use is probed, events or not:
	// Key Vault sends no event for disable, delete or lost access.
	ProbeInterval time.Duration
	// Concurrency bounds keys reconciled at once.
	Concurrency int
	// LeaseTTL is how long a key's lease lasts unless renewed; a replica
	// that dies holding one blocks that key for at most this long.
	LeaseTTL time.Duration
	// Sources deliver lifecycle events; Run runs each with Handle wrapped in
	// the worker's middleware (see Wrap).
	Sources []events.Source
	// Runners start with Run and stop when it ends (the status relay).
	Runners []Runner
	// NATS, when set, carries seal broadcasts (cmkd.control.seal.<tenant>)
	// so every process sharing the store drops a sealed tenant's DEKs at once.
	NATS *nats.Conn
	// HTTPAddr serves /healthz, /readyz and /metrics; empty serves nothing.
	HTTPAddr string
	// Registerer and Gatherer for metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// ShutdownTimeout bounds how long Run waits for in-flight work after
	// its context ends; then the work is abandoned (it resumes elsewhere).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("worker config: Store is required")
	case c.Reconciler == nil:
		return errors.New("worker config: Reconciler is required")
	case c.Instance == "":
		return errors.New("worker config: Instance is required")
	case c.ProbeInterval < 0, c.LeaseTTL < 0, c.ShutdownTimeout < 0:
		return errors.New("worker config: ProbeInterval, LeaseTTL and ShutdownTimeout must not be negative")
	case c.Concurrency < 0:
		return errors.New("worker config: Concurrency must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil || c.Gatherer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = reg, reg
	}
}
