package handlers

import (
	"errors"
	"log/slog"
	"time"

	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// Defaults for Config.
const (
	DefaultUnreachableGrace  = 15 * time.Minute
	DefaultNearExpiry        = 30 * 24 * time.Hour
	DefaultRewrapConcurrency = 32
	DefaultRewrapBatch       = 500
	DefaultSampleRate        = 0.01
)

// Config configures a Reconciler. Zero fields take the Default… values.
type Config struct {
	// Store and KEK are required.
	Store *store.Store
	KEK   *kek.Client
	// Broadcast, when set, tells every process sharing the store to drop a
	// sealed tenant's cached DEKs at once (cmkd.control.seal.<tenant>). The
	// seal itself is already persisted when it is called.
	Broadcast func(tenant string)
	// StatusWritten, when set, is called after status events may have been
	// written to the outbox (after every seal batch and every Reconcile), so
	// the relay publishes them now instead of at its next poll
	// (status.Relay.Kick). It must not block.
	StatusWritten func()
	// UnreachableGrace is how long a key that Key Vault cannot be asked about
	// (timeouts, 5xx, throttling) keeps serving before its tenants are sealed.
	UnreachableGrace time.Duration
	// SealOnExpiry seals tenants whose key has expired. Key Vault still
	// unwraps under an expired key, so by default cmkd only warns.
	SealOnExpiry bool
	// NearExpiry is how long before a key's expiry key.near_expiry is sent.
	NearExpiry time.Duration
	// RewrapConcurrency bounds DEKs re-wrapped at once; Key Vault's rate is
	// bounded separately by kek's per-vault limiter.
	RewrapConcurrency int
	// RewrapBatch is how many DEKs are read from the store at a time.
	RewrapBatch int
	// SampleRate is the fraction of re-wrapped DEKs unwrapped again remotely
	// after a rewrap (at least one); 1 verifies every DEK.
	SampleRate float64
	// Instance names this process in status events ("cmkd/<instance>").
	Instance string
	Logger   *slog.Logger
	Now      func() time.Time
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("handlers config: Store is required")
	case c.KEK == nil:
		return errors.New("handlers config: KEK is required")
	case c.UnreachableGrace < 0:
		return errors.New("handlers config: UnreachableGrace must not be negative")
	case c.SampleRate < 0 || c.SampleRate > 1:
		return errors.New("handlers config: SampleRate must be between 0 and 1")
	case c.RewrapConcurrency < 0 || c.RewrapBatch < 0:
		return errors.New("handlers config: RewrapConcurrency and RewrapBatch must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.UnreachableGrace == 0 {
		c.UnreachableGrace = DefaultUnreachableGrace
	}
	if c.NearExpiry == 0 {
		c.NearExpiry = DefaultNearExpiry
	}
	if c.RewrapConcurrency == 0 {
		c.RewrapConcurrency = DefaultRewrapConcurrency
	}
	if c.RewrapBatch == 0 {
		c.RewrapBatch = DefaultRewrapBatch
	}
	if c.SampleRate == 0 {
		c.SampleRate = DefaultSampleRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
