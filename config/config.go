// Package config is cmkd's configuration: the YAML file `cmkd run` and
// every other command read (with CMKD_* environment overrides), its
// validation, and opening what it describes: the Key Vault client
// (OpenKEK) and the store (OpenStore). Applications that use cmkd's store
// from their own process load the same file (see package envelope).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/api"
)

// Config is cmkd's configuration file (YAML). Every field can be overridden
// by an environment variable named after its path: store.dsn is
// CMKD_STORE_DSN, sources.eventgrid.key is CMKD_SOURCES_EVENTGRID_KEY.
type Config struct {
	// Instance names this replica in leases and status events (default: host name).
	Instance string      `yaml:"instance,omitempty"`
	Store    StoreConfig `yaml:"store,omitempty"`
	NATS     NATSConfig  `yaml:"nats,omitempty"`
	KeyVault KVConfig    `yaml:"keyvault,omitempty"`
	Sources  Sources     `yaml:"sources,omitempty"`
	Worker   WorkerConf  `yaml:"worker,omitempty"`
	HTTP     HTTPConfig  `yaml:"http,omitempty"`
	// API is the HTTP data API for services in other languages (package
	// api): off unless api.listen is set.
	API APIConfig `yaml:"api,omitempty"`
	// Status is where status events go besides NATS.
	Status StatusConfig `yaml:"status,omitempty"`
	// Dev holds what `cmkd dev` started, for the commands that only make
	// sense against the emulators (vault revoke/grant).
	Dev DevConfig `yaml:"dev,omitempty"`
}

// StoreConfig selects the database.
type StoreConfig struct {
	// Driver is "sqlite" (one machine) or "postgres" (several replicas).
	Driver string `yaml:"driver,omitempty"`
	// DSN is the SQLite file path or the PostgreSQL connection string, as
	// a URL (postgres://cmkd@db:5432/cmkd?sslmode=verify-full) or as
	// key=value pairs. Keep the password out of it where you can: libpq's
	// PGPASSWORD and password file fill it in. Errors never print it.
	DSN string `yaml:"dsn,omitempty"`
	// CacheTTL bounds how long a plaintext DEK stays in memory.
	CacheTTL time.Duration `yaml:"cache_ttl,omitempty"`
	// StateRecheck is how long an envelope Encrypt or Decrypt (the Go API
	// and the data API) uses a DEK the database confirmed before asking
	// again whether its tenant is still open (default 100ms). A seal by
	// another process stops those calls within it; a seal broadcast, at
	// once. Tenant destroy and remove wait it out before they return, so
	// every process of a deployment must use the same value. A negative
	// value asks on every call, at the cost of a database read per call.
	StateRecheck time.Duration `yaml:"state_recheck,omitempty"`
	// Schema is the PostgreSQL schema holding cmkd's tables (default
	// cmkd); deployments sharing one database each need their own.
	// PostgreSQL only; it replaces a search_path in the DSN.
	Schema string `yaml:"schema,omitempty"`
	// MaxConns bounds one replica's PostgreSQL connections (default 4, or
	// the number of CPUs if more). All replicas' together must fit the
	// server's max_connections. PostgreSQL only.
	MaxConns int `yaml:"max_conns,omitempty"`
	// StatementTimeout bounds each PostgreSQL statement, lock waits
	// included, so that a transaction stuck elsewhere fails cmkd's instead
	// of hanging it (default 30s). PostgreSQL only.
	StatementTimeout time.Duration `yaml:"statement_timeout,omitempty"`
	// Migrate brings the PostgreSQL schema up to this binary's version when
	// cmkd starts (default true; replicas starting together migrate once,
	// under a lock). Set it to false where the replicas may not change the
	// schema: they then refuse to start on an older schema until an
	// operator runs `cmkd migrate`. SQLite always migrates on open.
	Migrate *bool `yaml:"migrate,omitempty"`
}

// MigratesOnOpen reports whether opening the store may migrate its schema
// (store.migrate, default true).
func (s StoreConfig) MigratesOnOpen() bool { return s.Migrate == nil || *s.Migrate }

// NATSConfig connects to NATS.
type NATSConfig struct {
	URL       string `yaml:"url,omitempty"`
	User      string `yaml:"user,omitempty"`
	Password  string `yaml:"password,omitempty"`
	Token     string `yaml:"token,omitempty"`
	NKeyFile  string `yaml:"nkey_file,omitempty"`
	CredsFile string `yaml:"creds_file,omitempty"`
	CAFile    string `yaml:"ca_file,omitempty"`
	CertFile  string `yaml:"cert_file,omitempty"`
	KeyFile   string `yaml:"key_file,omitempty"`
	// StatusMaxAge is how long CMKD_STATUS keeps events.
	StatusMaxAge time.Duration `yaml:"status_max_age,omitempty"`
	// CreateStreams creates CMKD_STATUS (and CMKD_EVENTS for the queue
	// source) if missing; off where streams are managed elsewhere.
	CreateStreams bool `yaml:"create_streams,omitempty"`
	// CheckStreams, with CreateStreams off, makes `cmkd run` verify at
	// start that the streams (and the queue source's consumer) exist as
	// deploy/nats defines them, and refuse to start otherwise: the mode
	// for streams an operator or NACK owns.
	CheckStreams bool `yaml:"check_streams,omitempty"`
}

// KVConfig is how cmkd reaches Key Vault.
type KVConfig struct {
	// Credential is default | workload | managed | static.
	Credential string `yaml:"credential,omitempty"`
	ClientID   string `yaml:"client_id,omitempty"`
	TenantID   string `yaml:"tenant_id,omitempty"`
	// Token is the bearer token for credential "static" (the emulator).
	Token string `yaml:"token,omitempty"`
	// CAFile adds a CA to trust (the emulator's). Certificates are always verified.
	CAFile string `yaml:"ca_file,omitempty"`
	// Emulator relaxes the bearer challenge's resource check, which a vault
	// on 127.0.0.1 cannot pass, and allows vaults on loopback addresses,
	// where the emulator runs. Never set it against Azure.
	Emulator bool `yaml:"emulator,omitempty"`
	// Vaults is the allow-list of vault URLs: the only vaults cmkd calls
	// (tenant keys, probes, events). Empty allows every vault under
	// DNSSuffixes, on port 443.
	Vaults []string `yaml:"vaults,omitempty"`
	// DNSSuffixes are the host suffixes of the vaults cmkd may call when
	// Vaults is empty; default .vault.azure.net and .managedhsm.azure.net
	// (Azure's public cloud). In a sovereign cloud list its suffixes, e.g.
	// .vault.azure.cn, .vault.usgovcloudapi.net, .managedhsm.usgovcloudapi.net.
	DNSSuffixes []string `yaml:"dns_suffixes,omitempty"`
	// VaultLimit is the calls per second a vault allows (default 400, Key
	// Vault's 4,000 per 10 s); the probe budget is a share of it.
	VaultLimit float64 `yaml:"vault_limit,omitempty"`
	// InitialRate is the calls per second per vault the adaptive limiter
	// starts at (it then grows while Key Vault keeps up, and halves on 429).
	InitialRate float64 `yaml:"initial_rate,omitempty"`
	// PlatformKey is the operator's key (a Key Vault or Managed HSM key
	// URL, without a version) of the platform layer: every new tenant's
	// data is encrypted under it, and a tenant's own key adds a second
	// layer. Empty: tenants have their own key alone.
	PlatformKey string `yaml:"platform_key,omitempty"`
	// ManagedHSMs lists vault URLs that are Managed HSMs although their
	// host does not say so (an emulator on 127.0.0.1, a sovereign cloud):
	// their rate limits are an HSM's.
	ManagedHSMs []string `yaml:"managed_hsms,omitempty"`
}

// Sources are where events come from; any combination may be enabled.
type Sources struct {
	EventGrid EventGridSource `yaml:"eventgrid,omitempty"`
	Webhook   WebhookSource   `yaml:"webhook,omitempty"`
	Queue     QueueSource     `yaml:"queue,omitempty"`
}

// EventGridSource pulls from an Event Grid namespace topic subscription.
type EventGridSource struct {
	Endpoint     string `yaml:"endpoint,omitempty"`
	Topic        string `yaml:"topic,omitempty"`
	Subscription string `yaml:"subscription,omitempty"`
	// Key is a SharedAccessKey; empty uses the Key Vault credential's identity.
	Key    string `yaml:"key,omitempty"`
	CAFile string `yaml:"ca_file,omitempty"`
}

// WebhookSource receives Event Grid push deliveries.
type WebhookSource struct {
	Listen string `yaml:"listen,omitempty"`
	Path   string `yaml:"path,omitempty"`
	// SharedSecret, if set, must arrive in the "code" query parameter or
	// the X-Cmkd-Webhook-Secret header.
	SharedSecret string `yaml:"shared_secret,omitempty"`
	// Audience, Issuer and JWKSURL validate Microsoft Entra bearer tokens.
	Audience string `yaml:"audience,omitempty"`
	Issuer   string `yaml:"issuer,omitempty"`
	JWKSURL  string `yaml:"jwks_url,omitempty"`
	// AllowedApplications, if set, accepts only tokens issued to these
	// application ids (Event Grid's is 4962773b-9cdb-44cf-a8bf-237846a00ab7
	// in the public cloud).
	AllowedApplications []string `yaml:"allowed_applications,omitempty"`
	// MaxConns caps the connections held open at once (default 128).
	MaxConns int `yaml:"max_conns,omitempty"`
	// Enqueue publishes deliveries to CMKD_EVENTS instead of handling them.
	Enqueue bool `yaml:"enqueue,omitempty"`
}

// StatusConfig names the status sinks besides NATS (nats.url).
type StatusConfig struct {
	// EventGrid publishes every status event to an Event Grid topic as
	// well, for auditors who subscribe on Azure (Functions, Logic Apps,
	// Event Hubs, Sentinel). Its delivery is at least once: subscribers
	// deduplicate by the event id.
	EventGrid EventGridSink `yaml:"eventgrid,omitempty"`
}

// EventGridSink is an Event Grid topic status events are published to with
// azeventgrid. Authenticate with Key (a topic access key), SAS (a shared
// access signature token) or, with neither, the Key Vault credential's
// identity, which needs the EventGrid Data Sender role on the topic.
type EventGridSink struct {
	// Endpoint is the topic endpoint,
	// https://<topic>.<region>-1.eventgrid.azure.net/api/events; empty: off.
	Endpoint string `yaml:"endpoint,omitempty"`
	Key      string `yaml:"key,omitempty"`
	SAS      string `yaml:"sas,omitempty"`
	// CAFile trusts an emulated topic's certificate.
	CAFile string `yaml:"ca_file,omitempty"`
}

// QueueSource consumes the CMKD_EVENTS JetStream work queue.
type QueueSource struct {
	Enabled bool   `yaml:"enabled,omitempty"`
	Durable string `yaml:"durable,omitempty"`
	// AckWait is how long an event a replica took stays invisible to the
	// others (default 30s; a running handler extends it): an event a dead
	// replica held is redelivered after at most this long. At least 1s.
	AckWait time.Duration `yaml:"ack_wait,omitempty"`
}

// WorkerConf tunes the worker.
type WorkerConf struct {
	// ProbeInterval is how often each key is probed (each on its own
	// schedule, spread over the interval).
	ProbeInterval time.Duration `yaml:"probe_interval,omitempty"`
	// UnreachableGrace is how long tenants are served while Key Vault
	// does not answer, from the last probe that reached it (by any
	// replica); then they seal with reason unreachable.
	UnreachableGrace time.Duration `yaml:"unreachable_grace,omitempty"`
	SealOnExpiry     bool          `yaml:"seal_on_expiry,omitempty"`
	// ProbeBudget is the share of a vault's limit probes may use (default
	// 0.1); past it the probe interval of that vault's keys stretches.
	ProbeBudget float64 `yaml:"probe_budget,omitempty"`
	// Concurrency bounds the keys of one vault checked at once.
	Concurrency int `yaml:"concurrency,omitempty"`
	// LeaseTTL is how long a replica's claim on a key lasts unless renewed
	// (default 30s; renewed every third of it while the replica works on
	// the key). A replica that dies holding a key's lease blocks that key
	// for at most this long; then another replica takes the key over at
	// its next check and resumes its rewrap. Shorter takes over sooner,
	// and renews more often.
	LeaseTTL time.Duration `yaml:"lease_ttl,omitempty"`
	// VaultRewraps bounds the rewraps running at once in one vault.
	VaultRewraps int `yaml:"vault_rewraps,omitempty"`
	// EventMinInterval is the least time between two checks of one key
	// that events ask for (default 1 s): an event flood costs one check per
	// key per interval.
	EventMinInterval  time.Duration `yaml:"event_min_interval,omitempty"`
	RewrapConcurrency int           `yaml:"rewrap_concurrency,omitempty"`
	SampleRate        float64       `yaml:"sample_rate,omitempty"`
}

// HTTPConfig is the health and metrics endpoint.
// APIConfig configures the HTTP data API `cmkd run` serves on a listener
// of its own (docs/api/openapi.yaml).
type APIConfig struct {
	// Listen is host:port; empty: no data API.
	Listen string `yaml:"listen,omitempty"`
	// CertFile and KeyFile serve the API over TLS; without them it is
	// plain HTTP, for a TLS-terminating proxy in front or loopback.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ClientCAFile verifies client certificates (mTLS, the alternative to
	// Entra ID tokens): a caller's identity is its certificate's subject
	// CN or URI SAN, authorized by auth.tenants. Needs cert_file.
	ClientCAFile string `yaml:"client_ca_file,omitempty"`
	// Auth: Entra ID bearer tokens (issuer, audience, jwks_url), the app
	// role that may use every tenant and the lifecycle routes (admin_role,
	// default Tenants.Admin), and the per-tenant allow-list of callers
	// (tenants: identity → tenants, "*" for all).
	Auth api.Auth `yaml:"auth,omitempty"`
	// Anonymous serves without authentication: `cmkd dev` only; refused
	// unless keyvault.emulator is set.
	Anonymous bool `yaml:"anonymous,omitempty"`
	// MaxBody bounds a request's payload (default 1 MiB); Timeout a
	// request (default 10s).
	MaxBody int64         `yaml:"max_body,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

type HTTPConfig struct {
	Listen string `yaml:"listen,omitempty"`
	// MaxConns caps the connections held open at once (default 32).
	MaxConns int `yaml:"max_conns,omitempty"`
}

// DevConfig records the emulators `cmkd dev` runs.
type DevConfig struct {
	// KeyVault is the default vault of the vault commands.
	KeyVault string   `yaml:"keyvault,omitempty"`
	Vaults   []string `yaml:"vaults,omitempty"`
	// HSM is the emulated Managed HSM (`cmkd dev --hsm`), if any.
	HSM string `yaml:"hsm,omitempty"`
	// PlatformVault is the operator's emulated vault holding the platform
	// key, apart from the customers' vaults as in production.
	PlatformVault string `yaml:"platform_vault,omitempty"`
	// SystemTopic is the emulated Event Grid system topic that pushes
	// Key Vault's events to the webhook (`cmkd dev --events webhook`).
	SystemTopic string `yaml:"system_topic,omitempty"`
	// DeadLetters is the directory the emulated topics dead-letter into.
	DeadLetters string `yaml:"dead_letters,omitempty"`
}

// Load reads the YAML file at path, applies CMKD_* environment overrides,
// fills in defaults and validates the result. Unknown fields are errors.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path) // #nosec G304 -- the operator's --config
	if err != nil {
		return nil, fmt.Errorf("read config: %w (start `cmkd dev` to get one, or pass --config)", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.ApplyEnv(os.LookupEnv); err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// SetDefaults fills in the defaults of unset fields (Load does): the
// instance name, driver sqlite, credential default, and the NATS and source
// defaults.
func (c *Config) SetDefaults() {
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.KeyVault.Credential == "" {
		c.KeyVault.Credential = "default"
	}
	if c.NATS.StatusMaxAge == 0 {
		c.NATS.StatusMaxAge = 90 * 24 * time.Hour
	}
	if c.Sources.Webhook.Path == "" {
		c.Sources.Webhook.Path = "/events"
	}
	if c.Sources.Queue.Durable == "" {
		c.Sources.Queue.Durable = "cmkd-worker"
	}
}

// Validate names the first field that is wrong and what to do about it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	switch c.Store.Driver {
	case "sqlite", "postgres":
	default:
		bad("store.driver", "%q is not sqlite or postgres", c.Store.Driver)
	}
	if c.Store.DSN == "" {
		bad("store.dsn", "is required (a SQLite file path or a PostgreSQL URL)")
	}
	errs = append(errs, c.Store.validate()...)
	switch c.KeyVault.Credential {
	case "default", "workload", "managed":
	case "static":
		if c.KeyVault.Token == "" {
			bad("keyvault.token", "is required with credential static")
		}
	default:
		bad("keyvault.credential", "%q is not default, workload, managed or static", c.KeyVault.Credential)
	}
	if eg := c.Sources.EventGrid; eg.Endpoint != "" && (eg.Topic == "" || eg.Subscription == "") {
		bad("sources.eventgrid", "endpoint needs topic and subscription")
	}
	if eg := c.Status.EventGrid; eg.Endpoint != "" {
		if u, err := url.Parse(eg.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("status.eventgrid.endpoint", "%q is not an https URL (the topic endpoint, …/api/events)", eg.Endpoint)
		}
		if eg.Key != "" && eg.SAS != "" {
			bad("status.eventgrid", "set key or sas, not both")
		}
	}
	if (c.Sources.Queue.Enabled || c.Sources.Webhook.Enqueue) && c.NATS.URL == "" {
		bad("nats.url", "is required by the queue source and webhook enqueue")
	}
	if c.NATS.CreateStreams && c.NATS.CheckStreams {
		bad("nats.check_streams", "is for streams cmkd does not own; turn off nats.create_streams or this")
	}
	if err := c.KeyVault.VaultPolicy().Validate(); err != nil {
		bad("keyvault.vaults / keyvault.dns_suffixes", "%v", err)
	}
	if p := c.KeyVault.PlatformKey; p != "" {
		if k, err := cmkd.ParseKeyID(p); err != nil || k.Version != "" {
			bad("keyvault.platform_key", "%q is not a key URL without a version (e.g. https://ops-vault.vault.azure.net/keys/platform)", p)
		}
	}
	if c.API.Anonymous && !c.KeyVault.Emulator {
		bad("api.anonymous", "serves the data API to anyone: cmkd dev only (it needs keyvault.emulator); configure api.auth")
	}
	if c.API.Listen != "" && !c.API.Anonymous && c.API.Auth.Entra == nil && c.API.ClientCAFile == "" {
		bad("api.auth", "the data API needs api.auth.entra (Entra ID tokens) or api.client_ca_file (client certificates)")
	}

	if c.Worker.SampleRate < 0 || c.Worker.SampleRate > 1 {
		bad("worker.sample_rate", "%v is not between 0 and 1", c.Worker.SampleRate)
	}
	if c.Worker.ProbeBudget < 0 || c.Worker.ProbeBudget > 1 {
		bad("worker.probe_budget", "%v is not between 0 and 1 (a share of the vault's limit)", c.Worker.ProbeBudget)
	}
	if c.Worker.VaultRewraps < 0 || c.KeyVault.VaultLimit < 0 {
		bad("worker.vault_rewraps / keyvault.vault_limit", "must not be negative")
	}
	if c.Worker.ProbeInterval < 0 || c.Worker.UnreachableGrace < 0 || c.Worker.EventMinInterval < 0 {
		bad("worker", "probe_interval, unreachable_grace and event_min_interval must not be negative")
	}
	if l := c.Worker.LeaseTTL; l != 0 && l < time.Second {
		bad("worker.lease_ttl", "%s is under 1s: a replica would lose its keys to every pause", l)
	}
	if w := c.Sources.Queue.AckWait; w != 0 && w < time.Second {
		bad("sources.queue.ack_wait", "%s is under 1s", w)
	}
	return errors.Join(errs...)
}

// ApplyEnv overrides fields from CMKD_<PATH> variables, looked up with
// lookup (os.LookupEnv in Load): CMKD_STORE_DSN sets store.dsn. Lists are
// comma-separated.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	return walkEnv(reflect.ValueOf(c).Elem(), "CMKD", lookup)
}

func walkEnv(v reflect.Value, prefix string, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := walkEnv(fv, name, lookup); err != nil {
				return err
			}
			continue
		}
		s, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("environment %s=%q: %w", name, s, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&b))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int, v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Type())
	}
	return nil
}

// Write writes c as YAML to path (0600: it may hold secrets).
func Write(path string, c *Config) error {
	out, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// PlatformKey is keyvault.platform_key parsed; zero when unset.
func (c *Config) PlatformKey() (cmkd.KeyID, error) {
	if c.KeyVault.PlatformKey == "" {
		return cmkd.KeyID{}, nil
	}
	k, err := cmkd.ParseKeyID(c.KeyVault.PlatformKey)
	if err != nil {
		return k, fmt.Errorf("keyvault.platform_key: %w", err)
	}
	return k, nil
}
