package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// Reconciler converges the store's tenants and DEKs to the state of their
// Key Vault keys. One Reconcile per key may run at a time; the worker
// guarantees that (a lease per key across replicas).
type Reconciler struct {
	cfg   Config
	store *store.Store
	kek   *kek.Client
	log   *slog.Logger

	mu          sync.Mutex
	unreachable map[cmkd.KeyID]time.Time // key → first failed probe in a row
}

// New returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Reconciler{
		cfg: cfg, store: cfg.Store, kek: cfg.KEK, log: cfg.Logger,
		unreachable: map[cmkd.KeyID]time.Time{},
	}, nil
}

// Request asks for one key to be reconciled.
type Request struct {
	// Key is the key to reconcile; any version it names is ignored.
	Key cmkd.KeyID
	// Cause is the id of the event that asked, for status events' "cause".
	Cause string
	// EventType is the type of that event, if any. Only KeyNearExpiry uses
	// it: Key Vault's own notice window may be wider than NearExpiry.
	EventType string
	// Guard, when set, is called between rewrap batches; an error (a lost
	// lease) stops the rewrap, which resumes on the next Reconcile.
	Guard func(context.Context) error
	// Progress, when set, is told how far a rewrap has got.
	Progress func(done, total int)
}

// Outcome says what a Reconcile did.
type Outcome string

// Outcomes of Reconcile.
const (
	NothingToDo Outcome = "unchanged" // no tenant uses the key, or all is in step
	Sealed      Outcome = "sealed"
	Waiting     Outcome = "waiting" // Key Vault unreachable, within the grace period
	Rewrapped   Outcome = "rewrapped"
	InStep      Outcome = "in_step" // usable; any sealed tenants unsealed
)

// Result describes one Reconcile.
type Result struct {
	Outcome Outcome
	// Reason is the seal reason when Outcome is Sealed.
	Reason string
	// Version is the key version the DEKs are (now) wrapped under.
	Version string
	Rewrap  *RewrapStats
}

// Reconcile probes req.Key and converges every tenant on it. The error is
// non-nil only when the work could not be done and should be tried again
// (the store failed, a rewrap stopped); what Key Vault said is in Result.
func (r *Reconciler) Reconcile(ctx context.Context, req Request) (Result, error) {
	if req.Key.IsZero() {
		return Result{}, fmt.Errorf("reconcile: %w: no key given", cmkd.ErrInvalidKeyID)
	}
	req.Key = req.Key.Versionless()
	key := req.Key
	tenants, err := r.store.TenantsByKey(ctx, key)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile %s: %w", key, err)
	}
	if len(tenants) == 0 {
		return Result{Outcome: NothingToDo}, nil
	}
	defer r.statusWritten()
	a, err := r.assess(ctx, key)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile %s: %w", key, err)
	}
	switch {
	case a.sealReason != "":
		r.clearUnreachable(key)
		return r.sealAll(ctx, req, tenants, a.sealReason, a.detail)
	case a.transient != nil:
		return r.whileUnreachable(ctx, req, tenants, a.transient)
	}
	r.clearUnreachable(key)
	if err := r.warnExpiry(ctx, req, tenants, a.latest); err != nil {
		return Result{}, err
	}
	if a.latest.Outcome == kek.Expired && r.cfg.SealOnExpiry {
		return r.sealAll(ctx, req, tenants, cmkd.ReasonExpired, a.latest.Err)
	}
	if err := r.unsealAll(ctx, req, tenants); err != nil {
		return Result{}, err
	}
	return r.rotate(ctx, req, tenants, a)
}
