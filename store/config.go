package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cmkd-io/cmkd"
)

// Defaults for Config.
const (
	DefaultMaxRecordSize = 1 << 20
	// DefaultDEKMaxEncryptions keeps random 96-bit nonces far from
	// colliding: at 2^28 messages the chance is about 2^-41, well inside
	// NIST SP 800-38D's 2^-32 bound.
	DefaultDEKMaxEncryptions = 1 << 28
	DefaultDEKMaxAge         = 30 * 24 * time.Hour
	DefaultCacheTTL          = 5 * time.Minute
	DefaultCacheMaxUses      = 1 << 20
	DefaultCacheMaxBytes     = 16 << 20 // about 15,000 DEKs (CacheEntrySize)
	DefaultStateRecheck      = 100 * time.Millisecond
)

// Config configures a Store. Zero numeric fields take their defaults.
type Config struct {
	// Backend is the database. Required. Store.Close closes it.
	Backend Backend
	// KEK wraps and unwraps DEKs in Key Vault. Required.
	KEK KEK
	// PlatformKey is the operator's key (versionless) of the platform
	// layer every new tenant's data is encrypted under; a customer key
	// adds a second layer. Zero: tenants have their customer key alone,
	// as before there was a platform layer.
	PlatformKey cmkd.KeyID
	// Logger receives operational logs; never key material.
	Logger *slog.Logger
	// MaxRecordSize bounds a record's plaintext in bytes.
	MaxRecordSize int
	// DEKMaxEncryptions and DEKMaxAge retire a tenant's active DEK: the next
	// write after either limit makes a new one.
	DEKMaxEncryptions int64
	DEKMaxAge         time.Duration
	// CacheTTL bounds how long a plaintext DEK stays in memory, and so how
	// long a process cut off from seal broadcasts can keep serving.
	CacheTTL time.Duration
	// CacheMaxUses is how often a cached DEK is used before it is unwrapped
	// again; CacheMaxBytes bounds the cache's memory in total, each DEK
	// counted as CacheEntrySize.
	CacheMaxUses  int64
	CacheMaxBytes int
	// StateRecheck is how long Encrypt and Decrypt use a cached DEK that
	// the database confirmed (its tenant exists and is open, the DEK is
	// still the tenant's) before asking the database again. A seal or key
	// change written by another process stops this process's envelope
	// calls within StateRecheck; a seal broadcast (Forget) or a seal by
	// this process stops them at once; DestroyTenant and RemoveTenant wait
	// StateRecheck before they return, so that when they do no process
	// with the same StateRecheck serves the tenant. Asking on
	// every call costs a database read per call — 90 % of a warm decrypt
	// (docs/benchmarks.md). Negative asks on every call.
	StateRecheck time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxRecordSize == 0 {
		c.MaxRecordSize = DefaultMaxRecordSize
	}
	if c.DEKMaxEncryptions == 0 {
		c.DEKMaxEncryptions = DefaultDEKMaxEncryptions
	}
	if c.DEKMaxAge == 0 {
		c.DEKMaxAge = DefaultDEKMaxAge
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.CacheMaxUses == 0 {
		c.CacheMaxUses = DefaultCacheMaxUses
	}
	if c.StateRecheck == 0 {
		c.StateRecheck = DefaultStateRecheck
	}
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Backend == nil:
		return errors.New("store config: Backend is required")
	case c.KEK == nil:
		return errors.New("store config: KEK is required")
	case !c.PlatformKey.IsZero() && c.PlatformKey.Version != "":
		return fmt.Errorf("store config: PlatformKey %s must be versionless", c.PlatformKey)
	case c.MaxRecordSize < 0:
		return fmt.Errorf("store config: MaxRecordSize %d is negative", c.MaxRecordSize)
	case c.DEKMaxEncryptions < 0 || c.DEKMaxEncryptions > 1<<32:
		return fmt.Errorf("store config: DEKMaxEncryptions %d not in 1..2^32", c.DEKMaxEncryptions)
	case c.DEKMaxAge < 0:
		return fmt.Errorf("store config: DEKMaxAge %s is negative", c.DEKMaxAge)
	case c.CacheTTL < 0:
		return fmt.Errorf("store config: CacheTTL %s is negative", c.CacheTTL)
	case c.CacheMaxUses < 0:
		return fmt.Errorf("store config: CacheMaxUses %d is negative", c.CacheMaxUses)
	case c.CacheMaxBytes < 0 || (c.CacheMaxBytes > 0 && c.CacheMaxBytes < CacheEntrySize):
		return fmt.Errorf("store config: CacheMaxBytes %d holds no DEK", c.CacheMaxBytes)
	}
	return nil
}
