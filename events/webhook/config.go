package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxBody      = 1 << 20
	DefaultSecretHeader = "X-Cmkd-Webhook-Secret" // #nosec G101 -- the name of a header, not a credential
	// SecretQueryParam carries the shared secret when it is part of the
	// endpoint URL registered with Event Grid.
	SecretQueryParam = "code"
	DefaultSkew      = 2 * time.Minute
	// DefaultKeyRefresh is how often Entra's signing keys are fetched
	// again; Entra announces new keys well before it signs with them.
	DefaultKeyRefresh = 24 * time.Hour
)

// Defaults for the server Run starts. Every connection holds a file
// descriptor, so none may be held for ever: an idle or slow client is
// dropped, and past MaxConns new connections wait in the kernel's backlog
// instead of taking descriptors the rest of the process (store, NATS,
// health listener) needs.
const (
	// DefaultReadTimeout bounds reading one request, body included: a 1 MiB
	// delivery takes well under a second from Event Grid.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection no request used for
	// this long; Event Grid opens a new one when it needs it.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes fits Event Grid's headers, a bearer token and
	// its at most 10 delivery attributes of at most 4 KiB each.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConns bounds the connections served at once.
	DefaultMaxConns = 128
	// readHeaderTimeout bounds the wait for a request's headers (at most
	// ReadTimeout).
	readHeaderTimeout = 10 * time.Second
)

// Config configures the endpoint.
type Config struct {
	// Listen is the address Run serves on, e.g. ":8443".
	Listen string
	// Path the endpoint answers on; other paths get 404. Empty answers on
	// every path.
	Path string
	// MaxBody is the largest accepted body (default DefaultMaxBody, Event
	// Grid's own limit).
	MaxBody int64
	// Auth says how deliveries prove they come from our subscription.
	Auth Auth
	// Decoder decodes deliveries. Required.
	Decoder *events.Decoder
	// Enqueue, in queue-based deployments, stores the delivery body for
	// the work queue (natsq.Enqueue) instead of handing its events to the
	// handler here.
	Enqueue func(ctx context.Context, body []byte) error
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives cmkd_webhook_requests_total; nil keeps it
	// unregistered.
	Registerer prometheus.Registerer

	// ReadTimeout bounds reading a request, headers and body (default
	// DefaultReadTimeout).
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (default
	// DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// MaxConns bounds the connections Run serves at once; more wait until
	// one closes (default DefaultMaxConns). Keep it well below the
	// process's open-file limit less what the rest of cmkd holds.
	MaxConns int
}

// Auth configures delivery authentication. At least one method is
// required; a request passing either is accepted.
type Auth struct {
	// SharedSecret, when set, must arrive in the SecretHeader header (an
	// Event Grid delivery attribute) or the "code" query parameter.
	SharedSecret string
	// SecretHeader names the header (default DefaultSecretHeader).
	SecretHeader string
	// Entra, when set, requires an RS256 bearer token issued by Issuer for
	// Audience, signed by a key from JWKSURL.
	Entra *EntraAuth
}

// EntraAuth configures bearer-token validation for Event Grid deliveries
// made with Microsoft Entra authentication.
type EntraAuth struct {
	// Audience is the application id URI or client id Event Grid requests
	// the token for.
	Audience string
	// Issuer is the token issuer, e.g.
	// "https://login.microsoftonline.com/{tenant}/v2.0" or
	// "https://sts.windows.net/{tenant}/".
	Issuer string
	// JWKSURL serves the signing keys, e.g.
	// "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys".
	JWKSURL string
	// AllowedApplications, when set, accepts only tokens Entra issued to one
	// of these client applications: the token's appid claim (v1 tokens) or
	// azp claim (v2 tokens). Event Grid delivers with its own first-party
	// application, EventGridApplicationID in Azure's public cloud
	// (54316b56-3481-47f9-8f30-0300f5542a7b in Azure Government). Empty
	// accepts a token of any application that can get one for Audience.
	AllowedApplications []string
	// Skew tolerated on exp and nbf (default DefaultSkew).
	Skew time.Duration
	// RefreshInterval is how often the signing keys are fetched again, so
	// that keys Entra withdrew stop being trusted (default
	// DefaultKeyRefresh). An unknown key id fetches them at most once a
	// minute.
	RefreshInterval time.Duration
	// HTTPClient fetches JWKSURL (default http.DefaultClient).
	HTTPClient *http.Client
}

// EventGridApplicationID is the application id of Microsoft.EventGrid, the
// first-party application Event Grid requests webhook tokens as, in
// Azure's public cloud; see "Deliver events to Microsoft Entra protected
// endpoints" in Event Grid's documentation.
const EventGridApplicationID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"

func (c *Config) setDefaults() {
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Auth.SecretHeader == "" {
		c.Auth.SecretHeader = DefaultSecretHeader
	}
	if e := c.Auth.Entra; e != nil {
		if e.Skew == 0 {
			e.Skew = DefaultSkew
		}
		if e.RefreshInterval == 0 {
			e.RefreshInterval = DefaultKeyRefresh
		}
		if e.HTTPClient == nil {
			e.HTTPClient = http.DefaultClient
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field, after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.Decoder == nil:
		return errors.New("webhook: Decoder is required")
	case c.MaxBody < 0 || c.MaxBody > events.MaxBodyBytes:
		return fmt.Errorf("webhook: MaxBody %d: must be 1..%d", c.MaxBody, events.MaxBodyBytes)
	case c.ReadTimeout < 0:
		return fmt.Errorf("webhook: ReadTimeout %s: must not be negative", c.ReadTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("webhook: IdleTimeout %s: must not be negative", c.IdleTimeout)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("webhook: MaxHeaderBytes %d: must not be negative", c.MaxHeaderBytes)
	case c.MaxConns < 0:
		return fmt.Errorf("webhook: MaxConns %d: must not be negative", c.MaxConns)
	case c.Auth.SharedSecret == "" && c.Auth.Entra == nil:
		return errors.New("webhook: Auth: set SharedSecret or Entra; deliveries must be authenticated")
	}
	if e := c.Auth.Entra; e != nil {
		return e.validate()
	}
	return nil
}

func (e *EntraAuth) validate() error {
	switch {
	case e.Audience == "":
		return errors.New("webhook: Auth.Entra.Audience is required")
	case e.Issuer == "":
		return errors.New("webhook: Auth.Entra.Issuer is required")
	case e.Skew < 0:
		return fmt.Errorf("webhook: Auth.Entra.Skew %s: must not be negative", e.Skew)
	case e.RefreshInterval < 0:
		return fmt.Errorf("webhook: Auth.Entra.RefreshInterval %s: must not be negative", e.RefreshInterval)
	}
	for i, app := range e.AllowedApplications {
		if strings.TrimSpace(app) == "" {
			return fmt.Errorf("webhook: Auth.Entra.AllowedApplications[%d]: must not be empty", i)
		}
	}
	u, err := url.Parse(e.JWKSURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("webhook: Auth.Entra.JWKSURL %q: must be an https URL", e.JWKSURL)
	}
	return nil
}
