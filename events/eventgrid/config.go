package eventgrid

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
)

// Defaults for Config.
const (
	DefaultMaxEvents       = 10
	DefaultMaxWait         = 60 * time.Second
	DefaultMaxInFlight     = 16
	DefaultLockRenew       = 30 * time.Second
	DefaultReleaseDelay    = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Service limits of a receive call.
const (
	minWait      = 10 * time.Second
	maxWait      = 120 * time.Second
	maxMaxEvents = 100
)

// Config configures a Source. Zero values take the defaults.
type Config struct {
	// Endpoint is the namespace URL, "https://<ns>.<region>-1.eventgrid.azure.net".
	Endpoint string
	// Topic and Subscription name the namespace topic and its pull
	// subscription.
	Topic, Subscription string
	// Credential authenticates with Microsoft Entra ID; Key with the
	// namespace's shared access key. Set exactly one.
	Credential azcore.TokenCredential
	Key        string
	// RootCAs, if set, replaces the system roots for the endpoint's
	// certificate (the emulator's CA in development).
	RootCAs *x509.CertPool
	// MaxEvents is the most events one receive asks for (1..100).
	MaxEvents int
	// MaxWait is how long a receive waits for events (10 s..120 s).
	MaxWait time.Duration
	// MaxInFlight bounds the events being handled at once; no more are
	// received (and locked) than can be handled.
	MaxInFlight int
	// LockRenew is how often a running handler's lock is renewed. Keep it
	// well below the subscription's lock duration (60 s by default).
	LockRenew time.Duration
	// ReleaseDelay is the base delay before a failed event is redelivered;
	// it doubles with each delivery and is rounded up to a delay Event Grid
	// allows (0, 10 s, 1 min, 10 min, 1 h). Negative releases at once.
	ReleaseDelay time.Duration
	// ShutdownTimeout is how long Run waits, after its context ends, for
	// running handlers before cancelling their context.
	ShutdownTimeout time.Duration
	// Decoder turns a received CloudEvent into a lifecycle event. Required.
	Decoder *events.Decoder
	// Logger receives delivery logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the source's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.LockRenew == 0 {
		c.LockRenew = DefaultLockRenew
	}
	if c.ReleaseDelay == 0 {
		c.ReleaseDelay = DefaultReleaseDelay
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if u, err := url.Parse(c.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("eventgrid config: Endpoint %q must be an https URL", c.Endpoint)
	}
	switch {
	case c.Topic == "":
		return errors.New("eventgrid config: Topic is required")
	case c.Subscription == "":
		return errors.New("eventgrid config: Subscription is required")
	case (c.Credential == nil) == (c.Key == ""):
		return errors.New("eventgrid config: set exactly one of Credential and Key")
	case c.MaxEvents < 1 || c.MaxEvents > maxMaxEvents:
		return fmt.Errorf("eventgrid config: MaxEvents %d must be within 1..%d", c.MaxEvents, maxMaxEvents)
	case c.MaxWait < minWait || c.MaxWait > maxWait:
		return fmt.Errorf("eventgrid config: MaxWait %s must be within %s..%s", c.MaxWait, minWait, maxWait)
	case c.MaxInFlight < 1:
		return fmt.Errorf("eventgrid config: MaxInFlight %d must be at least 1", c.MaxInFlight)
	case c.LockRenew < 0:
		return fmt.Errorf("eventgrid config: LockRenew %s must be positive", c.LockRenew)
	case c.ReleaseDelay > time.Hour:
		return fmt.Errorf("eventgrid config: ReleaseDelay %s must be at most 1h, Event Grid's longest", c.ReleaseDelay)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("eventgrid config: ShutdownTimeout %s must be positive", c.ShutdownTimeout)
	case c.Decoder == nil:
		return errors.New("eventgrid config: Decoder is required")
	}
	return nil
}
