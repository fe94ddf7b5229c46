package status

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config.
const (
	DefaultStream     = "CMKD_STATUS"
	DefaultMaxAge     = 90 * 24 * time.Hour
	DefaultReplicas   = 1
	DefaultDuplicates = 10 * time.Minute
	DefaultBatch      = 100
	DefaultClaim      = 15 * time.Second
	DefaultInterval   = 500 * time.Millisecond
	DefaultBackoff    = 250 * time.Millisecond
	// MaxBackoff caps the wait between publish attempts while NATS is down.
	MaxBackoff = 10 * time.Second
)

// publishTimeout bounds one publish; a slower ack counts as a failure and
// the entry is published again, which the message id makes harmless.
const publishTimeout = 5 * time.Second

// Config configures a Relay and the stream it publishes to. Zero fields
// take the Default… values.
type Config struct {
	// Instance names this process: the CloudEvent source is cmkd/<Instance>
	// and the relay claims outbox entries under this name. Required.
	Instance string
	// Stream is the JetStream stream holding cmkd.status.>.
	Stream string
	// MaxAge is how long the stream keeps an event.
	MaxAge   time.Duration
	Replicas int
	// Duplicates is JetStream's duplicate window. It must be longer than
	// Claim: an entry whose ack was lost is published again at the latest
	// when its claim expires, and only inside the window is that copy dropped.
	Duplicates time.Duration
	// CreateStream creates or updates the stream when the relay starts, and
	// again if it disappears (a NATS server that lost its storage).
	CreateStream bool
	// Batch is how many outbox entries are claimed at once, for Claim.
	// A relay that dies holding a claim delays the events it held — and
	// their tenants' later ones — until the claim runs out: Claim is
	// short, but longer than a batch's publish (publishTimeout) with
	// room for its MarkSent.
	Batch int
	Claim time.Duration
	// Interval is the outbox poll when idle; Kick skips the wait.
	Interval time.Duration
	// Backoff is the first wait after a failed publish; it doubles, with
	// jitter, up to MaxBackoff. A reconnect to NATS ends the wait early.
	Backoff    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	c.Stream = or(c.Stream, DefaultStream)
	c.MaxAge = or(c.MaxAge, DefaultMaxAge)
	c.Replicas = or(c.Replicas, DefaultReplicas)
	c.Duplicates = or(c.Duplicates, DefaultDuplicates)
	c.Batch = or(c.Batch, DefaultBatch)
	c.Claim = or(c.Claim, DefaultClaim)
	c.Interval = or(c.Interval, DefaultInterval)
	c.Backoff = or(c.Backoff, DefaultBackoff)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Validate reports the first invalid field, after applying defaults.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Instance == "":
		return errors.New("status config: Instance is required")
	case c.MaxAge < 0, c.Replicas < 0, c.Batch < 0, c.Claim < 0, c.Interval < 0, c.Backoff < 0:
		return fmt.Errorf("status config: %s must not be negative", c.negativeField())
	case c.Duplicates <= c.Claim:
		return fmt.Errorf("status config: Duplicates (%s) must be longer than Claim (%s), or a retried publish may be doubled",
			c.Duplicates, c.Claim)
	}
	return nil
}

func (c Config) negativeField() string {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"MaxAge", c.MaxAge < 0}, {"Replicas", c.Replicas < 0}, {"Batch", c.Batch < 0},
		{"Claim", c.Claim < 0}, {"Interval", c.Interval < 0}, {"Backoff", c.Backoff < 0},
	} {
		if f.neg {
			return f.name
		}
	}
	return ""
}
