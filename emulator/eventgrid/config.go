package eventgrid

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for Config.
const (
	DefaultAddr             = "127.0.0.1:0"
	DefaultLockDuration     = 60 * time.Second
	DefaultMaxDeliveryCount = 10
)

// Config describes an emulated namespace.
type Config struct {
	// Addr is the listen address; DefaultAddr picks a free loopback port.
	Addr string
	// CAFile, when set, receives the PEM of the CA that signed the server
	// certificate, so that other processes can trust it.
	CAFile string
	// Key is the namespace's shared access key. Requests must then carry
	// "Authorization: SharedAccessKey <Key>". Empty, and with AllowBearer
	// false, no authentication is required.
	Key string
	// AllowBearer accepts any "Authorization: Bearer <token>"; the token is
	// not validated.
	AllowBearer bool
	// Topics maps each topic to its event subscriptions, created at start.
	Topics map[string][]string
	// LockDuration is how long a received event stays locked to its
	// receiver. Azure allows 60 to 300 s; tests may use less.
	LockDuration time.Duration
	// MaxDeliveryCount is how many deliveries an event gets before it is
	// dead-lettered instead of being offered again.
	MaxDeliveryCount int
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for locks, release delays and dead-letter times; nil
	// is time.Now. Waiting itself always uses real timers.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.LockDuration == 0 {
		c.LockDuration = DefaultLockDuration
	}
	if c.MaxDeliveryCount == 0 {
		c.MaxDeliveryCount = DefaultMaxDeliveryCount
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.LockDuration < 0 {
		return errors.New("LockDuration must not be negative")
	}
	if c.MaxDeliveryCount < 0 {
		return errors.New("eventgrid emulator: MaxDeliveryCount must not be negative")
	}
	for topic, subs := range c.Topics {
		if !validName(topic) {
			return fmt.Errorf("eventgrid emulator: Topics: invalid topic name %q", topic)
		}
		for _, sub := range subs {
			if !validName(sub) {
				return fmt.Errorf("eventgrid emulator: Topics[%s]: invalid subscription name %q", topic, sub)
			}
		}
	}
	return nil
}

// validName follows Azure's rule for namespace topic and subscription names:
// 3 to 50 letters, digits and hyphens.
func validName(s string) bool {
	if len(s) < 3 || len(s) > 50 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
