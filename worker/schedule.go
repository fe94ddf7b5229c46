package worker

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// checker is what the scheduler runs for a key: *handlers.Reconciler.
type checker interface {
	Check(ctx context.Context, req handlers.Request) (handlers.Result, *handlers.Plan, error)
	Rewrap(ctx context.Context, req handlers.Request, plan *handlers.Plan) (handlers.Result, error)
}

// vaultLimits says how many calls per second a vault allows: *kek.Client.
type vaultLimits interface {
	VaultLimit(vault string) float64
}

// scheduler watches every key on its own. Each key is checked (probed, and
// its tenants converged to what the probe found) on its own schedule —
// the probe interval with jitter, stretched when the vault's probe budget
// demands it — and whenever an event asks; a rewrap the check finds needed
// runs in the background, while the key's checks go on. Per-vault bounds on
// running checks and rewraps keep a slow or hung vault from holding back
// another vault's keys, and the lease makes one replica the key's writer.
type scheduler struct {
	cfg     Config
	rec     checker
	store   *store.Store
	limits  vaultLimits
	log     *slog.Logger
	metrics *metrics
	only    cmkd.KeyID // when set, the one key watched (cmkd rewrap)
	// holder names this process in leases: the instance name and a random
	// suffix, so that two processes with one name are two holders.
	holder   string
	work     context.Context
	stopWork context.CancelFunc

	mu       sync.Mutex
	keys     map[cmkd.KeyID]*keyWork
	vaults   map[string]*vaultWork
	wake     chan struct{}
	stopping bool
	running  sync.WaitGroup // checks and rewraps
	// loops counts the run loop's turns: with thousands of keys, a loop
	// that wakes needlessly burns a CPU (tests watch it).
	loops atomic.Int64
}

func newScheduler(cfg Config, rec checker, st *store.Store, limits vaultLimits, m *metrics) *scheduler {
	work, stop := context.WithCancel(context.Background())
	return &scheduler{
		cfg: cfg, rec: rec, store: st, limits: limits, log: cfg.Logger, metrics: m, holder: holderID(cfg.Instance),
		work: work, stopWork: stop,
		keys: map[cmkd.KeyID]*keyWork{}, vaults: map[string]*vaultWork{},
		wake: make(chan struct{}, 1),
	}
}

// run checks keys as they come due and re-reads the key set, until ctx
// ends. ready is called once the key set has been read.
func (s *scheduler) run(ctx context.Context, ready func()) error {
	refreshed := time.Time{}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		s.loops.Add(1)
		now := time.Now()
		if now.Sub(refreshed) >= s.cfg.KeyRefresh {
			if err := s.refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Error("list keys in use", slog.Any("err", err))
			} else if refreshed.IsZero() && ready != nil {
				ready()
			}
			refreshed = now
		}
		next := s.startDue(now)
		if r := refreshed.Add(s.cfg.KeyRefresh); r.Before(next) {
			next = r
		}
		t.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// refresh reads the keys in use: new ones are watched from now on, their
// first check spread over the interval; keys no tenant uses any more are
// dropped once nothing runs for them.
func (s *scheduler) refresh(ctx context.Context) error {
	uses, err := s.store.Keys(ctx)
	if err != nil {
		return err
	}
	s.metrics.countKeys(uses)
	// What was recorded of the keys: their last rewraps, which outlive a
	// process, and the checks other replicas made.
	recorded, err := s.store.KeyStatuses(ctx)
	if err != nil {
		return err
	}
	inUse := map[cmkd.KeyID]bool{}
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []*keyWork
	for _, u := range uses {
		if !s.only.IsZero() && u.Key != s.only {
			continue
		}
		inUse[u.Key] = true
		if s.keys[u.Key] == nil {
			added = append(added, s.addLocked(u.Key))
		}
	}
	// Spread new keys' first checks over their vault's interval, as it is
	// with all of them counted.
	now := time.Now()
	for _, k := range added {
		k.due = now.Add(time.Duration(rand.Float64() * float64(k.vault.interval))) // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
	}
	for _, st := range recorded {
		k := s.keys[st.Key]
		if k == nil {
			continue
		}
		if k.status.Key.IsZero() {
			k.status = st
		}
		if st.ProbedAt.After(k.status.ProbedAt) { // another replica's probe
			k.status.ProbedAt = st.ProbedAt
		}
		s.checkedElsewhereLocked(k, st)
	}
	for key, k := range s.keys {
		if !inUse[key] && k.idle() {
			s.removeLocked(k)
		}
	}
	return nil
}

// checkedElsewhereLocked moves k's next check to an interval after st's
// check, when another replica checked k since this one did: replicas take
// turns on a key through its lease, and without this each would also probe
// it every interval, N replicas costing N times the probes.
func (s *scheduler) checkedElsewhereLocked(k *keyWork, st store.KeyStatus) {
	if k.checking || st.Holder == s.holder || !st.CheckedAt.After(k.started) {
		return
	}
	if due := st.CheckedAt.Add(jitter(k.vault.interval, s.cfg.ProbeJitter)); due.After(k.due) {
		k.due = due
	}
}

func (s *scheduler) addLocked(key cmkd.KeyID) *keyWork {
	v := s.vaults[key.Vault]
	if v == nil {
		v = &vaultWork{url: key.Vault, interval: s.cfg.ProbeInterval}
		s.vaults[key.Vault] = v
	}
	k := &keyWork{key: key, vault: v, cost: defaultCheckCost}
	s.keys[key] = k
	v.keys++
	v.cost += k.cost
	s.budgetLocked(v)
	return k
}

func (s *scheduler) removeLocked(k *keyWork) {
	delete(s.keys, k.key)
	k.vault.keys--
	k.vault.cost -= k.cost
	if k.vault.keys == 0 {
		delete(s.vaults, k.vault.url)
		return
	}
	s.budgetLocked(k.vault)
}

// startDue starts the checks and rewraps that are due and can run, and
// returns when the next one comes due. Due checks start earliest first;
// those whose vault has no free slot wait for a check to end (which pokes
// the loop), so they do not count for the next wake-up: a loop woken for
// keys that cannot start yet would spin.
func (s *scheduler) startDue(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := now.Add(s.cfg.KeyRefresh)
	if s.stopping {
		return next
	}
	var due []*keyWork
	for _, k := range s.keys {
		if k.plan != nil && k.task == nil {
			s.startRewrapLocked(k)
		}
		if k.checking {
			continue
		}
		if at := k.checkAt(); at.After(now) {
			next = minTime(next, at)
		} else {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b *keyWork) int { return a.checkAt().Compare(b.checkAt()) })
	for _, k := range due {
		s.startCheckLocked(k)
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// check asks for req.Key to be checked and waits for that check: one
// that starts after the request, shared with every request that arrives
// while it waits (a burst of duplicate events costs one check). A key no
// tenant uses is not checked and takes no lease. Asked more often than
// EventMinInterval for one key, or faster than the vault's probe budget,
// the check is scheduled for when it may run and check returns at once
// with Outcome Deferred: a flood of events cannot spend the vault's quota,
// and the events it carried are answered by that later check.
func (s *scheduler) check(ctx context.Context, req handlers.Request) (handlers.Result, error) {
	f, err := s.ask(ctx, req, true)
	if err != nil {
		return handlers.Result{}, err
	}
	return f.res, f.err
}

// Deferred is the Outcome of a check scheduled for later (see check).
const Deferred handlers.Outcome = "deferred"

// ask is check, returning the check's flight; limited says whether the
// per-key and per-vault limits apply (they do to events, not to an
// operator's command).
func (s *scheduler) ask(ctx context.Context, req handlers.Request, limited bool) (*flight, error) {
	key := req.Key.Versionless()
	req.Key = key
	s.mu.Lock()
	k := s.keys[key]
	s.mu.Unlock()
	if k == nil {
		tenants, err := s.store.TenantsByKey(ctx, key)
		if err != nil {
			return nil, err
		}
		if len(tenants) == 0 {
			return &flight{res: handlers.Result{Outcome: handlers.NothingToDo}}, nil
		}
		s.mu.Lock()
		if k = s.keys[key]; k == nil {
			k = s.addLocked(key)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if s.stopping {
		// No check starts any more: the caller retries (an event is
		// delivered again) with the next process.
		s.mu.Unlock()
		return nil, errShutdown
	}
	now := time.Now()
	if k.next == nil {
		k.next = &flight{req: req, done: make(chan struct{})}
		k.nextAt = now
		if limited {
			k.nextAt = s.eventSlotLocked(k, now)
		}
	} else if req.Progress != nil {
		k.next.req.Progress = req.Progress
	}
	f := k.next
	deferred := k.nextAt.After(now)
	if !k.checking && !s.stopping && !deferred {
		s.startCheckLocked(k)
	}
	s.mu.Unlock()
	if deferred {
		s.poke()
		return &flight{res: handlers.Result{Outcome: Deferred}}, nil
	}
	select {
	case <-f.done:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flight is one check that callers wait for.
type flight struct {
	req  handlers.Request
	done chan struct{}
	res  handlers.Result
	err  error
	// task is the rewrap the check started, if it started one (or nil
	// while the vault has no free rewrap slot).
	task *rewrapTask
}

// shutdown stops starting work and asks running rewraps to stop after the
// DEKs under way; it waits up to timeout for checks and rewraps to end,
// then cancels them. Whatever was cut short resumes on the next start.
func (s *scheduler) shutdown(timeout time.Duration) {
	s.mu.Lock()
	s.stopping = true
	for _, k := range s.keys {
		if k.task != nil {
			k.task.stop(errShutdown)
		}
		// A check asked for and not started never will be: its callers
		// (sources draining their events) must not wait for it.
		if f := k.next; f != nil {
			k.next = nil
			f.err = errShutdown
			close(f.done)
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.log.Warn("shutdown timeout: abandoning in-flight work; it resumes on restart")
		s.stopWork()
		<-done
	}
	s.stopWork()
}

var errShutdown = errors.New("worker shutting down")

// holderID is instance followed by a random suffix: unique per process.
func holderID(instance string) string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return instance + "/" + hex.EncodeToString(b[:])
}

// eventBurst is how far ahead of its vault's event budget a burst of
// event-driven checks may run before they are deferred.
const eventBurst = time.Second

// eventSlotLocked is when an event-driven check of k may start: no sooner
// than EventMinInterval after k's last check, and at the pace the vault's
// probe budget allows (a token bucket in virtual time, with eventBurst of
// slack).
func (s *scheduler) eventSlotLocked(k *keyWork, now time.Time) time.Time {
	at := now
	if !k.started.IsZero() {
		if t := k.started.Add(s.cfg.EventMinInterval); t.After(at) {
			at = t
		}
	}
	v := k.vault
	per := time.Duration(float64(k.cost) / (s.cfg.ProbeBudget * s.limits.VaultLimit(v.url)) * float64(time.Second))
	tat := v.eventTAT
	if tat.Before(now) {
		tat = now
	}
	if t := tat.Add(-eventBurst); t.After(at) {
		at = t
	}
	v.eventTAT = tat.Add(per)
	return at
}
