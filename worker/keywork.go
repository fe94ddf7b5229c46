package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// keyWork is what the scheduler knows and does about one key. Its fields
// are guarded by the scheduler's mutex.
type keyWork struct {
	key   cmkd.KeyID
	vault *vaultWork
	// cost is Key Vault calls per check: one probe and one unwrap per
	// version DEKs are under.
	cost int
	due  time.Time // the next scheduled check

	checking bool
	started  time.Time // when the last check started
	next     *flight   // a check asked for and not started yet
	nextAt   time.Time // when next may start

	plan    *handlers.Plan // a rewrap the last check asked for, not started
	planReq handlers.Request
	task    *rewrapTask // the rewrap running, nil when none

	lease *sharedLease // held while a check or the rewrap runs

	status store.KeyStatus
}

// checkAt is when k's next check may start: its scheduled one, or sooner
// the one an event asked for.
func (k *keyWork) checkAt() time.Time {
	if k.next != nil && k.nextAt.Before(k.due) {
		return k.nextAt
	}
	return k.due
}

// idle reports that nothing runs or waits for the key.
func (k *keyWork) idle() bool {
	return !k.checking && k.next == nil && k.task == nil && k.plan == nil
}

// defaultCheckCost is a key's cost before its first check says better.
const defaultCheckCost = 2

// startCheckLocked starts a check of k when its vault has a free check
// slot; otherwise k stays due and starts when a slot frees.
func (s *scheduler) startCheckLocked(k *keyWork) {
	if k.vault.checks >= s.cfg.Concurrency {
		return
	}
	f := k.next
	if f == nil {
		f = &flight{req: handlers.Request{Key: k.key, Cause: "reconcile"}, done: make(chan struct{})}
	}
	k.next, k.checking, k.started = nil, true, time.Now()
	k.vault.checks++
	s.running.Add(1)
	go s.runCheck(k, f)
}

// runCheck checks k under its lease, then schedules what follows.
func (s *scheduler) runCheck(k *keyWork, f *flight) {
	defer s.running.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.work, s.cfg.CheckTimeout)
	defer cancel()
	var res handlers.Result
	var plan *handlers.Plan
	lease, err := s.acquire(ctx, k)
	if err == nil {
		f.req.Key = k.key
		s.mu.Lock()
		f.req.Confirmed = k.status.ProbedAt // the grace of an unreachable vault counts from it
		s.mu.Unlock()
		res, plan, err = s.rec.Check(ctx, f.req)
		s.release(k, lease)
	}
	s.metrics.observe(res, err, time.Since(start))
	if err != nil && !errors.Is(err, ErrBusy) && s.work.Err() == nil {
		s.log.Error("check", slog.String("key", k.key.String()), slog.Any("err", err))
	}
	st := s.checked(k, f, start, res, plan, err)
	if st != nil {
		s.saveStatus(*st)
	}
	f.res, f.err = res, err
	close(f.done)
	s.poke()
}

// checked records a check's result and decides what follows: the next
// check's time, a rewrap to start, a rewrap to stop. It returns the status
// to save, nil when another replica holds the key.
func (s *scheduler) checked(k *keyWork, f *flight, start time.Time, res handlers.Result,
	plan *handlers.Plan, err error) *store.KeyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	k.checking = false
	k.vault.checks--
	k.due = start.Add(jitter(k.vault.interval, s.cfg.ProbeJitter))
	if errors.Is(err, ErrBusy) {
		// Come back when the holder's lease runs out: if the holder died,
		// its key is taken over then, not an interval later; if it lives,
		// it has renewed, and this costs a lease read.
		var busy *busyError
		if errors.As(err, &busy) && !busy.until.IsZero() && busy.until.Before(k.due) {
			k.due = busy.until.Add(takeoverSlack)
		}
		return nil
	}
	if res.Outcome == handlers.NothingToDo {
		return nil
	}
	if c := 1 + res.Versions; err == nil && c != k.cost {
		k.vault.cost += c - k.cost
		k.cost = c
		s.budgetLocked(k.vault)
	}
	k.status.Key, k.status.Holder, k.status.CheckedAt = k.key, s.holder, start
	k.status.Interval = k.vault.interval
	k.status.Rewrap.Running = k.task != nil
	switch {
	case err != nil:
		k.status.Outcome = "error"
	default:
		k.status.Outcome = string(res.Probe)
		if !res.Probe.Transient() && start.After(k.status.ProbedAt) {
			k.status.ProbedAt = start // not back: another replica may have probed since
		}
	}
	if res.Outcome == handlers.Sealed && k.task != nil {
		k.task.stop(fmt.Errorf("key sealed (%s)", res.Reason))
	}
	if plan != nil && k.task == nil {
		k.plan, k.planReq = plan, f.req
		s.startRewrapLocked(k)
		f.task = k.task
	}
	st := k.status
	return &st
}

// jitter spreads d by ±j, so that keys checked together drift apart.
func jitter(d time.Duration, j float64) time.Duration {
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64())) // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
}

// rewrapTask is one key's rewrap running in the background.
type rewrapTask struct {
	done chan struct{}
	res  handlers.Result
	err  error

	mu      sync.Mutex
	stopErr error
}

// stop asks the rewrap to stop after the DEKs under way.
func (t *rewrapTask) stop(why error) {
	t.mu.Lock()
	if t.stopErr == nil {
		t.stopErr = why
	}
	t.mu.Unlock()
}

func (t *rewrapTask) stopped() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopErr
}

// startRewrapLocked starts k's planned rewrap when its vault has a free
// rewrap slot; otherwise the plan waits for one.
func (s *scheduler) startRewrapLocked(k *keyWork) {
	if s.stopping || k.vault.rewraps >= s.cfg.VaultRewraps {
		return
	}
	plan, req := k.plan, k.planReq
	k.plan = nil
	task := &rewrapTask{done: make(chan struct{})}
	k.task = task
	k.vault.rewraps++
	stats := plan.Stats()
	k.status.Rewrap = store.RewrapStatus{Target: stats.Target, Total: stats.Total, Running: true}
	s.running.Add(1)
	go s.runRewrap(k, task, plan, req)
}

// runRewrap runs a rewrap under k's lease. The lease is checked between
// batches; the task's stop between DEKs.
func (s *scheduler) runRewrap(k *keyWork, task *rewrapTask, plan *handlers.Plan, req handlers.Request) {
	defer s.running.Done()
	start := time.Now()
	lease, err := s.acquire(s.work, k)
	var res handlers.Result
	if err == nil {
		req.Key = k.key
		req.Guard = func(ctx context.Context) error { return s.store.CheckLease(ctx, lease.get()) }
		req.Stopped = task.stopped
		req.Progress = s.progress(k, req.Progress)
		res, err = s.rec.Rewrap(s.work, req, plan)
		s.release(k, lease)
	}
	s.metrics.observe(res, err, time.Since(start))
	if err != nil && !errors.Is(err, ErrBusy) && task.stopped() == nil && s.work.Err() == nil {
		s.log.Error("rewrap", slog.String("key", k.key.String()), slog.Any("err", err))
	}
	s.mu.Lock()
	task.res, task.err = res, err
	k.task = nil
	k.vault.rewraps--
	k.status.Rewrap.Running = false
	if res.Rewrap != nil {
		k.status.Rewrap.Done = res.Rewrap.Rewrapped + res.Rewrap.Conflicts
	}
	st := k.status
	s.mu.Unlock()
	close(task.done)
	s.saveStatus(st)
	s.poke()
}

// progress records a rewrap's progress for the status, and passes it on.
func (s *scheduler) progress(k *keyWork, next func(done, total int)) func(done, total int) {
	var last time.Time
	var mu sync.Mutex
	return func(done, total int) {
		s.mu.Lock()
		k.status.Rewrap.Done, k.status.Rewrap.Total = done, total
		st := k.status
		s.mu.Unlock()
		mu.Lock()
		save := done == total || time.Since(last) >= time.Second
		if save {
			last = time.Now()
		}
		mu.Unlock()
		if save {
			s.saveStatus(st)
		}
		if next != nil {
			next(done, total)
		}
	}
}

// saveStatus records st for `cmkd keys` and other replicas; a failure
// costs only the view, so it is logged.
func (s *scheduler) saveStatus(st store.KeyStatus) {
	if st.Key.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.work), 5*time.Second)
	defer cancel()
	if err := s.store.PutKeyStatus(ctx, st); err != nil && s.work.Err() == nil {
		s.log.Warn("record key status", slog.String("key", st.Key.String()), slog.Any("err", err))
	}
}

// sharedLease is a key's lease held by this process for its check and its
// rewrap alike, renewed while either runs.
type sharedLease struct {
	users int
	stop  context.CancelFunc

	mu    sync.Mutex
	lease store.Lease
}

func (l *sharedLease) get() store.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lease
}

func (l *sharedLease) set(nl store.Lease) {
	l.mu.Lock()
	l.lease = nl
	l.mu.Unlock()
}

// busyError is ErrBusy with when the holder's lease runs out (zero if
// unknown).
type busyError struct{ until time.Time }

func (e *busyError) Error() string { return ErrBusy.Error() }
func (e *busyError) Unwrap() error { return ErrBusy }

// takeoverSlack is how long after another holder's lease runs out its key
// is checked again: past the expiry, so that the lease is free, by a margin
// for the clocks of two machines.
const takeoverSlack = 100 * time.Millisecond

// acquire takes k's lease, or joins this process's hold of it; ErrBusy if
// another replica holds it.
func (s *scheduler) acquire(ctx context.Context, k *keyWork) (*sharedLease, error) {
	s.mu.Lock()
	if l := k.lease; l != nil {
		l.users++
		s.mu.Unlock()
		return l, nil
	}
	s.mu.Unlock()
	name := k.key.LeaseName()
	got, err := s.store.AcquireLease(ctx, name, s.holder, s.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		busy := &busyError{}
		var held *store.LeaseHeldError
		if errors.As(err, &held) {
			busy.until = held.Lease.Expires
		}
		return nil, busy
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := k.lease; l != nil { // another goroutine of ours took it meanwhile
		l.users++
		return l, nil
	}
	rctx, stop := context.WithCancel(s.work)
	l := &sharedLease{users: 1, stop: stop, lease: got}
	k.lease = l
	go s.renew(rctx, k, l)
	return l, nil
}

// release gives up one use of k's lease, and the lease with the last.
func (s *scheduler) release(k *keyWork, l *sharedLease) {
	s.mu.Lock()
	l.users--
	last := l.users == 0
	if last {
		k.lease = nil
	}
	s.mu.Unlock()
	if !last {
		return
	}
	l.stop()
	if err := s.store.ReleaseLease(context.WithoutCancel(s.work), l.get()); err != nil {
		s.log.Warn("release lease", slog.String("lease", l.get().Name), slog.Any("err", err))
	}
}

// renew keeps l alive; if it is lost, the key's rewrap stops (its guard
// fails at the next batch) and the next check takes the lease anew.
func (s *scheduler) renew(ctx context.Context, k *keyWork, l *sharedLease) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			nl, err := s.store.RenewLease(ctx, l.get(), s.cfg.LeaseTTL)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("lease lost: stopping work on key", slog.String("key", k.key.String()), slog.Any("err", err))
					s.mu.Lock()
					if k.task != nil {
						k.task.stop(err)
					}
					s.mu.Unlock()
				}
				return
			}
			l.set(nl)
		}
	}
}

var _ checker = (*handlers.Reconciler)(nil)
var _ vaultLimits = (*kek.Client)(nil)
