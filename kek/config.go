package kek

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
)

// Defaults for Config and LimiterConfig.
const (
	DefaultMaxRetries     = 4
	DefaultRetryDelay     = 100 * time.Millisecond
	DefaultMaxRetryDelay  = 5 * time.Second
	DefaultProbeFreshness = 30 * time.Second
	DefaultTryTimeout     = 30 * time.Second

	DefaultInitialRate = 100.0
	DefaultMinRate     = 1.0
	// DefaultMaxRate is above every Key Vault and Managed HSM per-vault
	// limit, so the vault's 429s, not this cap, find the rate.
	DefaultMaxRate        = 10000.0
	DefaultIncrease       = 0.05
	DefaultMaxConcurrency = 64
	DefaultMaxPause       = 30 * time.Second
	// DefaultVaultLimit is Key Vault's documented per-vault limit for
	// cryptographic operations with RSA-2048 keys: 4,000 per 10 s.
	DefaultVaultLimit = 400.0
	// DefaultHSMLimit is Managed HSM's documented per-HSM limit for the
	// slowest operation cmkd calls routinely, RSA-2048 unwrap: about 1,100
	// per second (AES key wrap and unwrap allow about 9,000). A Managed HSM
	// throttles per second per HSM, not per 10 s per vault.
	DefaultHSMLimit = 1100.0
)

// Config configures a Client. Zero fields take the Default… values.
type Config struct {
	// Credential authenticates to Key Vault. Required.
	Credential azcore.TokenCredential
	// RootCAs replaces the system roots when set (the emulator's CA in
	// development). Certificates are always verified.
	RootCAs *x509.CertPool
	// DisableChallengeResourceVerification lets the bearer challenge name a
	// resource that is not the vault's domain, as the emulator on 127.0.0.1 does.
	DisableChallengeResourceVerification bool
	// Policy decides which vaults may be called at all; the zero policy
	// allows Key Vault and Managed HSM in Azure's public cloud.
	Policy VaultPolicy
	// ManagedHSMs lists vaults ("https://host[:port]" or host) that are
	// Managed HSMs although their host does not end in
	// .managedhsm.azure.net: an emulator on 127.0.0.1 standing in for one.
	// A Managed HSM's limiter starts from LimiterConfig.HSMLimit instead of
	// VaultLimit, and onboarding accepts oct-HSM keys only in one.
	ManagedHSMs []string
	// Limiter bounds the calls to each vault.
	Limiter LimiterConfig
	// MaxRetries is how often a transient failure (unavailable, throttled)
	// is retried; 0 takes DefaultMaxRetries, a negative value disables retries.
	MaxRetries int
	// RetryDelay is the first backoff after a transient failure; it doubles
	// per attempt up to MaxRetryDelay, jittered ±20 %.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// TryTimeout bounds one HTTP try, so a vault that accepts connections
	// but never answers counts as unreachable instead of hanging a caller.
	TryTimeout time.Duration
	// ProbeFreshness is how old a probe may be and still allow a local wrap.
	ProbeFreshness time.Duration
	// Registerer, when set, receives the cmkd_kv_* metrics.
	Registerer prometheus.Registerer
	// Logger receives call failures; nil discards.
	Logger *slog.Logger
}

// LimiterConfig shapes the adaptive per-vault limiter: a token bucket whose
// rate starts at InitialRate, grows by one call per second per success until
// the first 429 (slow start: doubling per second while calls flow at the rate), then grows by Increase (a fraction of the
// current rate) per second up to MaxRate, and halves on a 429 down to MinRate; at most MaxConcurrency calls are in flight per vault. A 429
// pauses the whole vault for Retry-After, or 1, 2, 4, 8, 16 s without one,
// never longer than MaxPause.
type LimiterConfig struct {
	// VaultLimit is the calls per second a vault allows, as documented
	// (DefaultVaultLimit). The limiter still finds the real rate by 429s;
	// this is the figure shares of the limit (the probe budget) are taken
	// of, so that they do not swing with the limiter's estimate.
	VaultLimit float64
	// HSMLimit is VaultLimit for a Managed HSM (DefaultHSMLimit). Its
	// limiter starts at InitialRate scaled by HSMLimit/VaultLimit (275/s
	// with the defaults), so it reaches an HSM's limit as soon as a vault's.
	HSMLimit       float64
	InitialRate    float64 // calls per second
	MinRate        float64
	MaxRate        float64
	Increase       float64
	MaxConcurrency int
	MaxPause       time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	c.RetryDelay = orDefault(c.RetryDelay, DefaultRetryDelay)
	c.MaxRetryDelay = orDefault(c.MaxRetryDelay, DefaultMaxRetryDelay)
	c.ProbeFreshness = orDefault(c.ProbeFreshness, DefaultProbeFreshness)
	c.TryTimeout = orDefault(c.TryTimeout, DefaultTryTimeout)
	c.Limiter.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (l *LimiterConfig) setDefaults() {
	l.VaultLimit = orDefault(l.VaultLimit, DefaultVaultLimit)
	l.HSMLimit = orDefault(l.HSMLimit, DefaultHSMLimit)
	l.InitialRate = orDefault(l.InitialRate, DefaultInitialRate)
	l.MinRate = orDefault(l.MinRate, DefaultMinRate)
	l.MaxRate = orDefault(l.MaxRate, DefaultMaxRate)
	l.Increase = orDefault(l.Increase, DefaultIncrease)
	l.MaxConcurrency = orDefault(l.MaxConcurrency, DefaultMaxConcurrency)
	l.MaxPause = orDefault(l.MaxPause, DefaultMaxPause)
}

// forHSM is the limiter configuration of a Managed HSM: its limit is
// HSMLimit, and its starting rate is InitialRate scaled by the ratio of the
// limits, within [MinRate, MaxRate]. A vault's configuration is unchanged.
func (l LimiterConfig) forHSM() LimiterConfig {
	l.InitialRate = min(l.MaxRate, max(l.MinRate, l.InitialRate*l.HSMLimit/l.VaultLimit))
	l.VaultLimit = l.HSMLimit
	return l
}

func orDefault[T int | float64 | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

// Validate reports the first field that is unusable after defaults apply.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Credential == nil:
		return errors.New("kek config: Credential is required")
	case c.RetryDelay < 0 || c.MaxRetryDelay < c.RetryDelay:
		return fmt.Errorf("kek config: RetryDelay %v and MaxRetryDelay %v must satisfy 0 <= RetryDelay <= MaxRetryDelay", c.RetryDelay, c.MaxRetryDelay)
	case c.TryTimeout < 0:
		return fmt.Errorf("kek config: TryTimeout %v must not be negative", c.TryTimeout)
	case c.ProbeFreshness < 0:
		return fmt.Errorf("kek config: ProbeFreshness %v must not be negative", c.ProbeFreshness)
	}
	for _, v := range c.ManagedHSMs {
		if _, err := cmkd.ParseVault(v); err != nil {
			return fmt.Errorf("kek config: ManagedHSMs entry %q: %w", v, err)
		}
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	return c.Limiter.Validate()
}

// Validate reports the first field that is unusable after defaults apply.
func (l LimiterConfig) Validate() error {
	l.setDefaults()
	switch {
	case l.VaultLimit <= 0:
		return fmt.Errorf("kek limiter: VaultLimit %v must be positive", l.VaultLimit)
	case l.HSMLimit <= 0:
		return fmt.Errorf("kek limiter: HSMLimit %v must be positive", l.HSMLimit)
	case l.MinRate <= 0:
		return fmt.Errorf("kek limiter: MinRate %v must be positive", l.MinRate)
	case l.MaxRate < l.MinRate:
		return fmt.Errorf("kek limiter: MaxRate %v is below MinRate %v", l.MaxRate, l.MinRate)
	case l.InitialRate < l.MinRate || l.InitialRate > l.MaxRate:
		return fmt.Errorf("kek limiter: InitialRate %v must lie in [MinRate, MaxRate]", l.InitialRate)
	case l.Increase < 0 || l.Increase > 1:
		return fmt.Errorf("kek limiter: Increase %v must lie in [0, 1]", l.Increase)
	case l.MaxConcurrency < 1:
		return fmt.Errorf("kek limiter: MaxConcurrency %d must be at least 1", l.MaxConcurrency)
	case l.MaxPause < time.Second:
		return fmt.Errorf("kek limiter: MaxPause %v must be at least 1s", l.MaxPause)
	}
	return nil
}
