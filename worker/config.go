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
	DefaultProbeInterval    = 60 * time.Second
	DefaultProbeJitter      = 0.1
	DefaultProbeBudget      = 0.1
	DefaultConcurrency      = 4
	DefaultVaultRewraps     = 2
	DefaultCheckTimeout     = 2 * time.Minute
	DefaultEventMinInterval = time.Second
	DefaultLeaseTTL         = 30 * time.Second
	DefaultShutdownTimeout  = 30 * time.Second
	// DefaultHTTPIdleTimeout closes keep-alive connections to HTTPAddr
	// that a probe or scrape left idle, so they cannot pile up.
	DefaultHTTPIdleTimeout = 60 * time.Second
	// DefaultHTTPMaxConns is plenty for the kubelet's probes and a few
	// scrapers.
	DefaultHTTPMaxConns = 32
	// maxKeyRefresh bounds how long a key some other process started to
	// use (a tenant added by the CLI) waits before it is watched.
	maxKeyRefresh = 5 * time.Second
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
	// Limits says how many calls per second each vault allows: the
	// probe budget is a share of it. Required (the *kek.Client).
	Limits vaultLimits
	// Instance names this replica: lease holder and status event source.
	Instance string
	// ProbeInterval is how often every key in use is probed, events or not:
	// Key Vault sends no event for disable, delete or lost access. Each key
	// has its own schedule, spread over the interval.
	ProbeInterval time.Duration
	// ProbeJitter spreads each key's interval by ± this fraction, so keys
	// probed together drift apart.
	ProbeJitter float64
	// ProbeBudget is the share of a vault's limit (kek's VaultLimit) that
	// probes may use. When the vault's keys at ProbeInterval would need
	// more, their interval stretches (and cmkd says so).
	ProbeBudget float64
	// Concurrency bounds the keys of one vault checked at once: a hung
	// vault holds back only its own keys.
	Concurrency int
	// VaultRewraps bounds the rewraps running at once in one vault; they
	// share its limit. Rewraps in different vaults run in parallel.
	VaultRewraps int
	// CheckTimeout bounds one check (probe and seal decisions).
	CheckTimeout time.Duration
	// EventMinInterval is the least time between two checks of one key
	// that events ask for: a flood of events for a key costs one check
	// per interval.
	EventMinInterval time.Duration
	// KeyRefresh is how often the set of keys in use is read again; at
	// most ProbeInterval and 5 s.
	KeyRefresh time.Duration
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
	// It is a listener of its own, so that a flood on a source's listener
	// (the webhook) cannot keep health from answering.
	HTTPAddr string
	// HTTPIdleTimeout closes keep-alive connections to HTTPAddr idle this
	// long (default DefaultHTTPIdleTimeout).
	HTTPIdleTimeout time.Duration
	// HTTPMaxConns bounds the connections to HTTPAddr served at once; more
	// wait until one closes (default DefaultHTTPMaxConns).
	HTTPMaxConns int
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
	case c.Limits == nil:
		return errors.New("worker config: Limits is required")
	case c.Instance == "":
		return errors.New("worker config: Instance is required")
	case c.ProbeInterval < 0, c.LeaseTTL < 0, c.ShutdownTimeout < 0:
		return errors.New("worker config: ProbeInterval, LeaseTTL and ShutdownTimeout must not be negative")
	case c.Concurrency < 0, c.VaultRewraps < 0, c.CheckTimeout < 0, c.KeyRefresh < 0, c.EventMinInterval < 0:
		return errors.New("worker config: Concurrency, VaultRewraps, CheckTimeout and KeyRefresh must not be negative")
	case c.HTTPIdleTimeout < 0, c.HTTPMaxConns < 0:
		return errors.New("worker config: HTTPIdleTimeout and HTTPMaxConns must not be negative")
	case c.ProbeJitter < 0 || c.ProbeJitter >= 1:
		return errors.New("worker config: ProbeJitter must be in [0, 1)")
	case c.ProbeBudget < 0 || c.ProbeBudget > 1:
		return errors.New("worker config: ProbeBudget must be in (0, 1]")
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
	if c.ProbeJitter == 0 {
		c.ProbeJitter = DefaultProbeJitter
	}
	if c.ProbeBudget == 0 {
		c.ProbeBudget = DefaultProbeBudget
	}
	if c.VaultRewraps == 0 {
		c.VaultRewraps = DefaultVaultRewraps
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.EventMinInterval == 0 {
		c.EventMinInterval = DefaultEventMinInterval
	}
	if c.KeyRefresh == 0 {
		c.KeyRefresh = min(c.ProbeInterval, maxKeyRefresh)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.HTTPIdleTimeout == 0 {
		c.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.HTTPMaxConns == 0 {
		c.HTTPMaxConns = DefaultHTTPMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil || c.Gatherer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = reg, reg
	}
}
