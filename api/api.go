// Package api is cmkd's HTTP data API: services written in other languages
// encrypt, decrypt and store records under a tenant's keys, and operators
// add, inspect and crypto-shred tenants, without linking the Go store.
//
// New returns an http.Handler; `cmkd run` mounts it on a listener of its
// own. Every request is authenticated — by an Entra ID bearer token or by a
// verified TLS client certificate — and authorized for the tenant it names,
// unless Config.Anonymous is set, which only `cmkd dev` does. Errors are
// RFC 9457 problem details (application/problem+json). The routes are
// described in docs/api/openapi.yaml.
//
// Client certificates are the listener's business: serve the handler with
// a tls.Config whose ClientAuth is tls.VerifyClientCertIfGiven (or
// RequireAndVerifyClientCert when no bearer tokens are accepted) and whose
// ClientCAs hold the CAs that issue callers' certificates. Only verified
// chains identify a caller, by the leaf's subject CN and URI SANs. Token
// and certificate identities share one namespace in Auth.Tenants and
// Auth.Admins, so that CA must not issue certificates named like
// applications.
//
// The handler sets no server timeouts: the http.Server that serves it
// should bound header and body reads, idle connections and header size,
// as worker's health listener does.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Defaults for Config's zero fields.
const (
	// DefaultMaxBody bounds a record's bytes or a plaintext or ciphertext
	// (decoded): the store's default record size.
	DefaultMaxBody = 1 << 20
	// DefaultTimeout bounds one request, Key Vault calls included.
	DefaultTimeout = 10 * time.Second
	// DefaultAdminRole is the Entra app role that may use every tenant and
	// the lifecycle routes.
	DefaultAdminRole = "Tenants.Admin"
	// DefaultSkew is the clock skew allowed on a token's exp and nbf.
	DefaultSkew = 2 * time.Minute
	// DefaultKeyRefresh is how often the signing keys are fetched again.
	DefaultKeyRefresh = 24 * time.Hour
	// bodyOverhead is what JSON and base64 add to MaxBody: base64 is 4/3
	// of the bytes, plus the field names and the AAD.
	bodyOverhead = 64 << 10
)

// Store is what the API needs of *store.Store.
type Store interface {
	Encrypt(ctx context.Context, tenant string, plaintext, aad []byte) ([]byte, error)
	Decrypt(ctx context.Context, tenant string, ciphertext, aad []byte) ([]byte, error)
	Put(ctx context.Context, tenant, key string, value []byte) error
	Get(ctx context.Context, tenant, key string) ([]byte, error)
	Delete(ctx context.Context, tenant, key string) error
	AddTenant(ctx context.Context, id string, key cmkd.KeyID) (store.Tenant, error)
	Tenant(ctx context.Context, id string) (store.Tenant, error)
	DestroyTenant(ctx context.Context, tenant string, ev cmkd.StatusEvent) error
}

// Config configures the API. The yaml names are the ones cmkd's config
// file is expected to use under its api section; the listen address and
// the listener's TLS settings are the caller's.
type Config struct {
	// Store holds the tenants. Required.
	Store Store `yaml:"-"`
	// Auth says who may call. Required unless Anonymous.
	Auth Auth `yaml:"auth"`
	// Anonymous turns authentication and authorization off: every caller
	// may use every route. Only `cmkd dev` sets it; never in production.
	Anonymous bool `yaml:"-"`
	// MaxBody bounds a record, plaintext or ciphertext in bytes (default
	// DefaultMaxBody); JSON bodies may be larger by base64's third plus a
	// small overhead. A larger body gets 413.
	MaxBody int64 `yaml:"max_body"`
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Registerer receives cmkd_api_requests_total and
	// cmkd_api_request_seconds; nil leaves them unregistered.
	Registerer prometheus.Registerer `yaml:"-"`
	// Logger (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
}

// Auth configures authentication and authorization. A caller is
// identified by an Entra bearer token (Entra) or, on a TLS listener that
// verifies client certificates, by its certificate.
type Auth struct {
	// Entra, when set, accepts RS256 bearer tokens it validates.
	Entra *Entra `yaml:"entra"`
	// AdminRole is the app role (roles claim) that may use every tenant and
	// the lifecycle routes (default DefaultAdminRole).
	AdminRole string `yaml:"admin_role"`
	// Admins are identities (token azp/appid/oid, certificate CN or URI
	// SAN) with the admin role's rights: for callers without app roles,
	// such as certificates.
	Admins []string `yaml:"admins"`
	// Tenants maps an identity to the tenants it may use; "*" is every
	// tenant (but not the lifecycle routes).
	Tenants map[string][]string `yaml:"tenants"`
}

// Entra configures bearer-token validation against Microsoft Entra ID.
type Entra struct {
	// Issuer is the token issuer, e.g.
	// "https://login.microsoftonline.com/{tenant}/v2.0".
	Issuer string `yaml:"issuer"`
	// Audience is cmkd's application id URI or client id.
	Audience string `yaml:"audience"`
	// JWKSURL serves the signing keys, e.g.
	// "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys".
	JWKSURL string `yaml:"jwks_url"`
	// Skew is the clock skew allowed (default DefaultSkew).
	Skew time.Duration `yaml:"skew"`
	// RefreshInterval is how often the keys are fetched again (default
	// DefaultKeyRefresh); an unknown key id fetches them sooner.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// HTTPClient fetches the keys (default http.DefaultClient).
	HTTPClient *http.Client `yaml:"-"`
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("api: no store")
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxBody < 0 {
		return errors.New("api: MaxBody is negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	a := &c.Auth
	if a.AdminRole == "" {
		a.AdminRole = DefaultAdminRole
	}
	if e := a.Entra; e != nil {
		if e.Issuer == "" || e.Audience == "" || e.JWKSURL == "" {
			return errors.New("api: auth.entra needs issuer, audience and jwks_url")
		}
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
	for id, tenants := range a.Tenants {
		for _, t := range tenants {
			if t == "*" {
				continue
			}
			if err := cmkd.ValidateTenantID(t); err != nil {
				return errors.New("api: auth.tenants[" + id + "]: " + err.Error())
			}
		}
	}
	if !c.Anonymous && a.Entra == nil && len(a.Tenants) == 0 && len(a.Admins) == 0 {
		return errors.New("api: no authentication configured (auth.entra, or client certificates named in auth.tenants or auth.admins)")
	}
	return nil
}
