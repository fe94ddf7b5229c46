package status

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/store"
)

// Defaults for EventGridConfig.
const (
	// DefaultEventGridSink names the Event Grid relay's delivery state in
	// the outbox.
	DefaultEventGridSink = "eventgrid"
	// DefaultEventGridClaim is longer than the NATS relay's: a batch may
	// take several requests, each bounded by the client's own retries.
	DefaultEventGridClaim = 30 * time.Second
	// DefaultAuthBackoff is the wait after Event Grid refused the
	// credentials: an operator has to fix them, so trying every few
	// seconds would only fill the log.
	DefaultAuthBackoff = time.Minute
	// MaxEventGridRequestBytes is the most Event Grid takes in one publish
	// request (1 MB); a larger one is refused with 413.
	MaxEventGridRequestBytes = 1 << 20
)

// EventGridConfig configures an EventGridRelay. Zero fields take the
// defaults of Config (Batch, Interval, Backoff) or the DefaultEventGrid…
// values.
type EventGridConfig struct {
	// Instance names this process, as Config.Instance does: the
	// CloudEvent source is cmkd/<Instance>, as on NATS. Required.
	Instance string
	// Sink names the relay's delivery state in the outbox; another name
	// for a second topic. Not store.NATSSink.
	Sink string
	// Batch is how many outbox entries are claimed at once, for Claim;
	// they are published in as few requests as MaxRequestBytes allows.
	Batch int
	Claim time.Duration
	// Interval is the outbox poll when idle; Kick skips the wait.
	Interval time.Duration
	// Backoff is the first wait after a failed publish; it doubles, with
	// jitter, up to MaxBackoff.
	Backoff time.Duration
	// AuthBackoff is the wait after Event Grid answered 401 or 403.
	AuthBackoff time.Duration
	// MaxRequestBytes bounds the body of one publish request; at most
	// MaxEventGridRequestBytes. An event that alone exceeds it is given up.
	MaxRequestBytes int
	Logger          *slog.Logger
	// Registerer registers the cmkd_status_eventgrid_… metrics; wrap it
	// (prometheus.WrapRegistererWith) to run relays to two topics.
	Registerer prometheus.Registerer
}

func (c *EventGridConfig) setDefaults() {
	c.Sink = or(c.Sink, DefaultEventGridSink)
	c.Batch = or(c.Batch, DefaultBatch)
	c.Claim = or(c.Claim, DefaultEventGridClaim)
	c.Interval = or(c.Interval, DefaultInterval)
	c.Backoff = or(c.Backoff, DefaultBackoff)
	c.AuthBackoff = or(c.AuthBackoff, DefaultAuthBackoff)
	c.MaxRequestBytes = or(c.MaxRequestBytes, MaxEventGridRequestBytes)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field, after applying defaults.
func (c EventGridConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Instance == "":
		return errors.New("event grid config: Instance is required")
	case c.Sink == store.NATSSink || !store.ValidSinkName(c.Sink):
		return fmt.Errorf("event grid config: Sink %q is not a sink name of its own", c.Sink)
	case c.Batch < 0, c.Claim < 0, c.Interval < 0, c.Backoff < 0, c.AuthBackoff < 0:
		return errors.New("event grid config: Batch, Claim, Interval, Backoff and AuthBackoff must not be negative")
	case c.MaxRequestBytes < 0 || c.MaxRequestBytes > MaxEventGridRequestBytes:
		return fmt.Errorf("event grid config: MaxRequestBytes %d is not within 1..%d", c.MaxRequestBytes, MaxEventGridRequestBytes)
	}
	return nil
}
