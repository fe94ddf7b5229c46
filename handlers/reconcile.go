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

	mu sync.Mutex
	// confirmed is when this process's probes last learnt each key's
	// state; unreachable when a key's first failed probe in a row began
	// (present while it fails). The unreachable grace counts from the
	// latest confirmation known, or else from the first failure.
	confirmed   map[cmkd.KeyID]time.Time
	unreachable map[cmkd.KeyID]time.Time
}

// New returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Reconciler{
		cfg: cfg, store: cfg.Store, kek: cfg.KEK, log: cfg.Logger,
		confirmed: map[cmkd.KeyID]time.Time{}, unreachable: map[cmkd.KeyID]time.Time{},
	}, nil
}

// Request asks for one key to be reconciled.
type Request struct {
	// Key is the key to reconcile; any version it names is ignored.
	Key cmkd.KeyID
	// Cause is the id of the event that asked, for status events' "cause".
	Cause string
	// Guard, when set, is called between rewrap batches; an error (a lost
	// lease) stops the rewrap, which resumes on the next Reconcile.
	Guard func(context.Context) error
	// Stopped, when set, is called before each DEK a rewrap moves; an
	// error (the key was sealed, the worker shuts down) stops the rewrap
	// after the DEKs already under way, so none of them is moved twice.
	Stopped func() error
	// Progress, when set, is told how far a rewrap has got.
	Progress func(done, total int)
	// Confirmed is when a probe last learnt the key's state from Key
	// Vault (usable or not), as recorded by any replica and across
	// restarts; zero if unknown. The unreachable grace counts from the
	// latest confirmation known.
	Confirmed time.Time
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

// Result describes one Check, Rewrap or Reconcile.
type Result struct {
	Outcome Outcome
	// Reason is the seal reason when Outcome is Sealed.
	Reason string
	// Version is the key version the DEKs are (now) wrapped under.
	Version string
	Rewrap  *RewrapStats
	// Probe is what the probe of the key's latest version found ("" when
	// no tenant uses the key).
	Probe kek.Outcome
	// Versions is the number of key versions DEKs are wrapped under: a
	// check costs one Key Vault call per version, and one more.
	Versions int
	// Unreadable counts DEKs set aside because Key Vault cannot unwrap
	// them (dek.unreadable).
	Unreadable int
}

// Plan is a rewrap a Check found to be needed: the key's DEKs not under
// Target yet.
type Plan struct {
	stats   RewrapStats
	tenants []store.Tenant
}

// Stats is what the plan will move.
func (p *Plan) Stats() RewrapStats { return p.stats }

// Reconcile checks req.Key and, when DEKs must move, rewraps them before
// it returns: what `cmkd rewrap` and tests want. The worker calls Check and
// Rewrap on their own, so that a long rewrap never holds back a probe.
func (r *Reconciler) Reconcile(ctx context.Context, req Request) (Result, error) {
	res, plan, err := r.Check(ctx, req)
	if err != nil || plan == nil {
		return res, err
	}
	return r.Rewrap(ctx, req, plan)
}

// Check probes req.Key and converges every tenant on it — seal, unseal,
// warn of expiry, record a version all DEKs are under — and says whether
// DEKs must move: then it returns a Plan for Rewrap, and does no bulk work
// itself. The error is non-nil only when the work could not be done and
// should be tried again (the store failed); what Key Vault said is in
// Result.
func (r *Reconciler) Check(ctx context.Context, req Request) (Result, *Plan, error) {
	if req.Key.IsZero() {
		return Result{}, nil, fmt.Errorf("check: %w: no key given", cmkd.ErrInvalidKeyID)
	}
	req.Key = req.Key.Versionless()
	key := req.Key
	tenants, err := r.store.TenantsByKey(ctx, key)
	if err != nil {
		return Result{}, nil, fmt.Errorf("check %s: %w", key, err)
	}
	if len(tenants) == 0 {
		return Result{Outcome: NothingToDo}, nil, nil
	}
	defer r.statusWritten()
	a, err := r.assess(ctx, key, r.graceLeft(req))
	if err != nil {
		return Result{}, nil, fmt.Errorf("check %s: %w", key, err)
	}
	res, plan, err := r.converge(ctx, req, tenants, a)
	res.Probe, res.Versions, res.Unreadable = a.latest.Outcome, len(inUseVersions(a.inUse)), a.setAside
	return res, plan, err
}

// converge acts on what assess found.
func (r *Reconciler) converge(ctx context.Context, req Request, tenants []store.Tenant, a assessment) (Result, *Plan, error) {
	key := req.Key
	switch {
	case a.sealReason != "":
		r.confirm(key, a.at)
		res, err := r.sealAll(ctx, req, tenants, a.sealReason, a.detail)
		return res, nil, err
	case a.transient != nil:
		res, err := r.whileUnreachable(ctx, req, tenants, a)
		return res, nil, err
	}
	r.confirm(key, a.at)
	if err := r.warnExpiry(ctx, req, tenants, a.latest); err != nil {
		return Result{}, nil, err
	}
	if a.latest.Outcome == kek.Expired && r.cfg.SealOnExpiry {
		res, err := r.sealAll(ctx, req, tenants, cmkd.ReasonExpired, a.latest.Err)
		return res, nil, err
	}
	if err := r.unsealAll(ctx, req, tenants); err != nil {
		return Result{}, nil, err
	}
	return r.plan(ctx, req, tenants, a)
}
