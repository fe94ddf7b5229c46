package keyvault

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultAddr           = "127.0.0.1:0"
	DefaultTenantID       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	DefaultVaultName      = "emulator"
	DefaultThrottleLimit  = 4000
	DefaultThrottleWindow = 10 * time.Second
	DefaultNearExpiry     = 30 * 24 * time.Hour
	DefaultExpiryCheck    = time.Second
	// DefaultMaxBody caps request bodies; larger ones answer 413.
	DefaultMaxBody = 1 << 20
)

// ErrInvalidConfig is wrapped by Config.Validate.
var ErrInvalidConfig = errors.New("invalid keyvault emulator config")

// Config configures the emulator. The zero value is usable.
type Config struct {
	Addr           string        // listen address; default "127.0.0.1:0"
	CAFile         string        // if set, PEM of the self-signed CA is written there (0644), its key beside it (CAFile+".key", 0600); an existing pair is reused, so clients keep trusting a restarted emulator
	StateFile      string        // if set, the vault (private keys included: development only) is loaded from and saved to it, so it survives restarts
	TenantID       string        // GUID in the 401 challenge
	Token          string        // if set, only "Bearer <Token>" is accepted (else 401); empty: any bearer
	VaultName      string        // used in event data and source; default "emulator"
	ThrottleLimit  int           // operations per ThrottleWindow; 0 = DefaultThrottleLimit (DefaultHSMThrottleLimit with ManagedHSM); <0 = off
	ThrottleWindow time.Duration // default 10s (1s with ManagedHSM)
	RetryAfter     bool          // send Retry-After on 429 (real Key Vault often does not)
	NearExpiry     time.Duration // KeyNearExpiry fires this long before exp; default 30 days
	ExpiryCheck    time.Duration // how often exp is checked for events; default 1s
	// ManagedHSM makes the emulator answer as an Azure Managed HSM: the
	// challenge names https://managedhsm.azure.net, every key is HSM-backed
	// (a create or import of RSA, EC or oct answers RSA-HSM, EC-HSM,
	// oct-HSM), attributes carry no hsmPlatform, operation results carry
	// "alg", and throttling counts per second with Managed HSM's per-kind
	// limits (see DefaultHSMThrottleLimit).
	ManagedHSM bool
	// PurgeProtection refuses purging a deleted key (403 Forbidden) until
	// its retention has passed, and drops "+Purgeable" from the keys'
	// recoveryLevel. Off by default, as in Azure. Server.SetSoftDelete
	// changes it at run time.
	PurgeProtection bool
	// RetentionDays is the soft-delete retention (recoverableDays), 7 to
	// 90; 0 means 90 with PurgeProtection (Azure's default) and 7 without
	// (the emulator's value before the setting existed, and the recorded
	// test vaults'). 90 days answer recoveryLevel "Recoverable", fewer
	// "CustomizedRecoverable".
	RetentionDays int
	// Sink receives lifecycle events; nil drops them. It is called outside
	// the emulator's locks, from request goroutines and the expiry loop.
	Sink   func(CloudEvent)
	Logger *slog.Logger
	Now    func() time.Time // default time.Now; tests may set a fake clock
}

// CloudEvent is a CloudEvents 1.0 structured-mode event as an Event Grid
// system topic for a key vault delivers it.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Event types the emulator emits.
const (
	EventKeyNewVersionCreated = "Microsoft.KeyVault.KeyNewVersionCreated"
	EventKeyNearExpiry        = "Microsoft.KeyVault.KeyNearExpiry"
	EventKeyExpired           = "Microsoft.KeyVault.KeyExpired"
)

// Faults are injected into Key Vault requests (never into /_emulator/).
type Faults struct {
	Latency   time.Duration // added before answering
	Jitter    time.Duration // uniform extra latency in [0, Jitter)
	ErrorRate float64       // fraction answering 500 or 503
	DropRate  float64       // fraction of connections closed without an answer
	// Methods limits the faults to requests of these HTTP methods (GET:
	// reading a key, as a probe does; POST: wrap, unwrap, rotate); empty:
	// every request.
	Methods []string
}

// Validate reports the first field that cannot be used.
func (c Config) Validate() error {
	switch {
	case c.ThrottleWindow < 0:
		return fmt.Errorf("%w: ThrottleWindow must not be negative", ErrInvalidConfig)
	case c.NearExpiry < 0:
		return fmt.Errorf("%w: NearExpiry must not be negative", ErrInvalidConfig)
	case c.ExpiryCheck < 0:
		return fmt.Errorf("%w: ExpiryCheck must not be negative", ErrInvalidConfig)
	case validRetention(c.RetentionDays) != nil:
		return validRetention(c.RetentionDays)
	case !vaultNameRE.MatchString(c.withDefaults().VaultName):
		return fmt.Errorf("%w: VaultName must match %s", ErrInvalidConfig, vaultNameRE)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if c.VaultName == "" {
		c.VaultName = DefaultVaultName
	}
	switch {
	case c.ThrottleLimit == 0 && c.ManagedHSM:
		c.ThrottleLimit = DefaultHSMThrottleLimit
	case c.ThrottleLimit == 0:
		c.ThrottleLimit = DefaultThrottleLimit
	}
	switch {
	case c.ThrottleWindow == 0 && c.ManagedHSM:
		c.ThrottleWindow = DefaultHSMThrottleWindow
	case c.ThrottleWindow == 0:
		c.ThrottleWindow = DefaultThrottleWindow
	}
	if c.NearExpiry == 0 {
		c.NearExpiry = DefaultNearExpiry
	}
	if c.ExpiryCheck == 0 {
		c.ExpiryCheck = DefaultExpiryCheck
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (f Faults) valid() bool {
	return f.Latency >= 0 && f.Jitter >= 0 &&
		f.ErrorRate >= 0 && f.ErrorRate <= 1 && f.DropRate >= 0 && f.DropRate <= 1
}
