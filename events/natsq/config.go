package natsq

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
)

// Defaults for Config's zero fields: the names other tools rely on (deploy/nats).
const (
	DefaultStream       = "CMKD_EVENTS"
	DefaultSubject      = "cmkd.events.>"
	DefaultEnqueueTo    = "cmkd.events.in"
	DefaultDurable      = "cmkd-worker"
	DefaultMaxDeliver   = 5
	DefaultAckWait      = 30 * time.Second
	DefaultMaxInFlight  = 16
	DefaultDLQSubject   = "cmkd.dlq.events"
	DefaultDLQStream    = "CMKD_EVENTS_DLQ"
	DefaultDrainTimeout = 30 * time.Second
)

// DefaultBackoff is the redelivery delay after the nth failed delivery; the
// last entry repeats.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// Config configures a Source.
type Config struct {
	// Stream is the work-queue stream (default DefaultStream).
	Stream string
	// Subjects the stream captures when CreateStream is set (default
	// DefaultSubject).
	Subjects []string
	// Durable is the consumer name all replicas share (default DefaultDurable).
	Durable string
	// CreateStream creates or updates the stream, the dead-letter stream and
	// the consumer at Run. Without it they must exist (set up by deploy/).
	CreateStream bool
	// MaxDeliver is how many times a message is handled before it is
	// dead-lettered (default DefaultMaxDeliver).
	MaxDeliver int
	// AckWait is how long a delivery stays invisible to other replicas;
	// a handler that runs longer extends it (default DefaultAckWait).
	AckWait time.Duration
	// Backoff is the delay before redelivering after the nth failure, unless
	// the handler's error asks for one (default DefaultBackoff).
	Backoff []time.Duration
	// MaxInFlight bounds messages handled at once (default DefaultMaxInFlight).
	MaxInFlight int
	// DLQSubject receives dead-lettered messages (default DefaultDLQSubject).
	DLQSubject string
	// DLQStream is created for DLQSubject when CreateStream is set (default
	// DefaultDLQStream).
	DLQStream string
	// DrainTimeout bounds how long Run waits for running handlers after its
	// context ends; then their contexts are cancelled (default
	// DefaultDrainTimeout).
	DrainTimeout time.Duration
	// Decoder decodes message bodies. Required.
	Decoder *events.Decoder
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives cmkd_natsq_* metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.Stream, DefaultStream)
	def(&c.Durable, DefaultDurable)
	def(&c.DLQSubject, DefaultDLQSubject)
	def(&c.DLQStream, DefaultDLQStream)
	if len(c.Subjects) == 0 {
		c.Subjects = []string{DefaultSubject}
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field, after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.Decoder == nil:
		return errors.New("natsq: Decoder is required")
	case c.MaxDeliver < 1:
		return fmt.Errorf("natsq: MaxDeliver %d: must be at least 1", c.MaxDeliver)
	case c.AckWait < time.Second:
		return fmt.Errorf("natsq: AckWait %s: must be at least 1s", c.AckWait)
	case c.MaxInFlight < 1:
		return fmt.Errorf("natsq: MaxInFlight %d: must be at least 1", c.MaxInFlight)
	case c.DrainTimeout < 0:
		return fmt.Errorf("natsq: DrainTimeout %s: must not be negative", c.DrainTimeout)
	}
	for i, b := range c.Backoff {
		if b < 0 {
			return fmt.Errorf("natsq: Backoff[%d] %s: must not be negative", i, b)
		}
	}
	return nil
}
