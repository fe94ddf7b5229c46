package eventgridtopic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Defaults for SubscriptionConfig, Azure's.
const (
	DefaultMaxDeliveryAttempts  = 30
	DefaultEventTTL             = 1440 * time.Minute
	DefaultMaxEventsPerBatch    = 1
	DefaultPreferredBatchSizeKB = 64
	DefaultDeliveryTimeout      = 30 * time.Second
)

// DefaultRetrySchedule is Event Grid's documented schedule: the wait after
// each failed attempt, the last one repeating until the attempts or the
// time to live run out.
var DefaultRetrySchedule = []time.Duration{
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
}

// SubscriptionConfig describes a webhook event subscription.
type SubscriptionConfig struct {
	// Name is 3 to 64 letters, digits and hyphens, unique in the topic.
	Name string
	// Endpoint is the webhook URL events are POSTed to.
	Endpoint string
	// Schema is the delivery schema; empty is the topic's input schema, or
	// the Event Grid schema when the topic accepts both.
	Schema Schema
	// MaxDeliveryAttempts is Azure's 1 to 30; 0 is DefaultMaxDeliveryAttempts.
	MaxDeliveryAttempts int
	// EventTTL is how long after publishing an event may still be
	// delivered; 0 is DefaultEventTTL. Tests may use less than Azure's
	// 1 minute minimum.
	EventTTL time.Duration
	// MaxEventsPerBatch is Azure's 1 to 5000; 0 is 1. Above 1, CloudEvents
	// are delivered as a batch.
	MaxEventsPerBatch int
	// PreferredBatchSizeKB bounds a batch's size (one event is always
	// sent, whatever its size); 0 is DefaultPreferredBatchSizeKB.
	PreferredBatchSizeKB int
	// BearerToken, when set, supplies the token sent as
	// "Authorization: Bearer" with every request to the endpoint, as Event
	// Grid's Entra-protected webhook delivery does. StaticBearerToken is
	// used when BearerToken is nil.
	BearerToken       func(ctx context.Context) (string, error)
	StaticBearerToken string
	// HTTPClient sends the requests; nil builds one trusting RootCAs (the
	// system roots when nil).
	HTTPClient *http.Client
	RootCAs    *x509.CertPool
	// RetrySchedule replaces DefaultRetrySchedule; tests shrink it.
	RetrySchedule []time.Duration
	// DeliveryTimeout bounds one request; 0 is Event Grid's 30 seconds.
	DeliveryTimeout time.Duration
}

func (c *SubscriptionConfig) setDefaults(topic Schema) {
	if c.Schema == "" {
		c.Schema = topic
		if c.Schema == "" {
			c.Schema = SchemaEventGrid
		}
	}
	if c.MaxDeliveryAttempts == 0 {
		c.MaxDeliveryAttempts = DefaultMaxDeliveryAttempts
	}
	if c.EventTTL == 0 {
		c.EventTTL = DefaultEventTTL
	}
	if c.MaxEventsPerBatch == 0 {
		c.MaxEventsPerBatch = DefaultMaxEventsPerBatch
	}
	if c.PreferredBatchSizeKB == 0 {
		c.PreferredBatchSizeKB = DefaultPreferredBatchSizeKB
	}
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
			Proxy:           http.ProxyFromEnvironment,
		}}
	}
}

func (c *SubscriptionConfig) validate() error {
	if !validName(c.Name, 3, 64) {
		return fmt.Errorf("subscription name %q: want 3 to 64 letters, digits and hyphens", c.Name)
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("subscription %s: endpoint %q is not an http(s) URL", c.Name, c.Endpoint)
	}
	switch c.Schema {
	case SchemaCloudEvents, SchemaEventGrid:
	default:
		return fmt.Errorf("subscription %s: delivery schema %q: want %s or %s", c.Name, c.Schema, SchemaCloudEvents, SchemaEventGrid)
	}
	if c.MaxDeliveryAttempts < 1 || c.MaxEventsPerBatch < 1 || c.PreferredBatchSizeKB < 1 {
		return fmt.Errorf("subscription %s: MaxDeliveryAttempts, MaxEventsPerBatch and PreferredBatchSizeKB must be positive", c.Name)
	}
	if c.EventTTL < 0 || c.DeliveryTimeout < 0 {
		return fmt.Errorf("subscription %s: EventTTL and DeliveryTimeout must not be negative", c.Name)
	}
	for _, d := range c.RetrySchedule {
		if d < 0 {
			return errors.New("subscription " + c.Name + ": RetrySchedule must not hold negative waits")
		}
	}
	return nil
}

// token is the bearer token for the next request, "" for none.
func (c *SubscriptionConfig) token(ctx context.Context) (string, error) {
	if c.BearerToken != nil {
		return c.BearerToken(ctx)
	}
	return c.StaticBearerToken, nil
}
