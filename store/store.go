package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd"
)

// Store is the envelope-encrypted store callers use. It is safe for
// concurrent use, and several Stores (in several processes) may share one
// database.
type Store struct {
	cfg    Config
	b      Backend
	kek    KEK
	log    *slog.Logger
	cache  *dekCache
	closed atomic.Bool

	mu     sync.Mutex
	active map[string]activeDEK // tenant -> DEK for new writes

	// newDEK serializes the slow path of picking a DEK for writes, so
	// concurrent first writes make one DEK, not many.
	newDEK sync.Mutex
	// refreshes are the confirmations ahead of time in flight; Close
	// waits for them.
	refreshes sync.WaitGroup
}

type activeDEK struct {
	id      string
	created time.Time
	// uses is the database's count when the DEK was read, plus this
	// process's uses since; pending are those not written yet.
	uses, pending int64
}

// New returns a Store over cfg.Backend.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Store{
		cfg:    cfg,
		b:      cfg.Backend,
		kek:    cfg.KEK,
		log:    cfg.Logger,
		cache:  newDEKCache(cfg.CacheTTL, cfg.CacheMaxUses, cfg.CacheMaxBytes),
		active: map[string]activeDEK{},
	}, nil
}

// PlatformKey is the key of the platform layer new tenants get; zero when
// the store has none.
func (s *Store) PlatformKey() cmkd.KeyID { return s.cfg.PlatformKey }

// Backend returns the store's backend, for tools that inspect it.
func (s *Store) Backend() Backend { return s.b }

// Close writes the DEK uses counted in memory, zeroes every cached DEK and
// closes the backend.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	tenants := make([]string, 0, len(s.active))
	for t := range s.active {
		tenants = append(tenants, t)
	}
	s.mu.Unlock()
	for _, t := range tenants {
		s.wipe(t)
	}
	s.refreshes.Wait()
	s.cache.wipe()
	return s.b.Close()
}

func (s *Store) now() time.Time { return s.cfg.Now() }

func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// forget drops what this process holds for tenant once the database says it
// is sealed or gone, so that a seal or destroy written by another process
// also empties this process's cache.
func (s *Store) forget(tenant string, err error) {
	if errors.Is(err, ErrSealed) || errors.Is(err, ErrUnknownTenant) {
		s.wipe(tenant)
	}
}

// Forget drops this process's cached plaintext DEKs of tenant: what a seal
// broadcast from another process asks for. The next read re-checks the
// tenant's persisted state before any Key Vault call.
func (s *Store) Forget(tenant string) { s.wipe(tenant) }

func (s *Store) wipe(tenant string) {
	s.cache.wipeTenant(tenant)
	s.mu.Lock()
	a, ok := s.active[tenant]
	delete(s.active, tenant)
	s.mu.Unlock()
	if ok && a.pending > 0 {
		s.addUses(context.Background(), a.id, a.pending)
	}
}

// event fills in what the store knows about a status event.
func (s *Store) event(ev cmkd.StatusEvent, kind cmkd.Kind, tenant string) cmkd.StatusEvent {
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.Kind == "" {
		ev.Kind = kind
	}
	if ev.Tenant == "" {
		ev.Tenant = tenant
	}
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	return ev
}

func wrapErr(op, tenant string, err error) error {
	return fmt.Errorf("%s %s: %w", op, tenant, err)
}
