package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// seals records when the store committed each tenant's seal (its "tenant
// sealed" log), and pokes changed after each.
type seals struct {
	changed chan struct{}

	mu sync.Mutex
	at map[string]time.Time
}

func newSeals() *seals { return &seals{changed: make(chan struct{}, 1), at: map[string]time.Time{}} }

func (s *seals) add(l logged) {
	tenant := l.Attr("tenant")
	if tenant == "" {
		return
	}
	s.mu.Lock()
	if _, ok := s.at[tenant]; !ok {
		s.at[tenant] = l.At
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *seals) snapshot() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.at))
	for t, at := range s.at {
		out[t] = at
	}
	return out
}

// disableRun is what the disable phase measured.
type disableRun struct {
	disabled int
	// latencies are disable → tenant sealed, one per disabled key whose
	// tenant was sealed within wait.
	latencies []time.Duration
	wait      time.Duration
	// unsealed describes each disabled key whose tenant was not sealed
	// within wait: its last check and what it found.
	unsealed   []string
	unexpected int           // tenants sealed that were not disabled
	elapsed    time.Duration // the rewrap's start → the last seal, or the wait's end
	// The rewrap's progress at the end.
	rewrapDone, rewrapTotal int
	rewrapRunning           bool
	calls, throttled        int64
	checks                  map[string]float64 // by outcome
	probes                  probeTimes
	cpu                     cpuUse
}

// disablePhase rotates the rewrap key and has the worker check it, which
// starts its rewrap in the background; once the rewrap has moved
// sz.ramped DEKs, it disables sz.disables probed keys, as their owners
// would, and waits for each key's tenant to be sealed: at most half as long
// again as the bound, and a minute.
func disablePhase(ctx context.Context, o bench.Options, env *bench.Env, w *runningWorker, sz probeSizes,
	keys []cmkd.KeyID, interval time.Duration, sealed *seals) (disableRun, error) {
	dr := disableRun{disabled: sz.disables, wait: 3*bound(interval)/2 + time.Minute, probes: newProbeTimes()}
	if _, err := env.Rotate(ctx); err != nil {
		return dr, err
	}
	env.KV.ResetCalls()
	cpu0 := sampleCPU()
	checks0, err := w.checks()
	if err != nil {
		return dr, err
	}
	start := time.Now()
	if _, err := w.Reconcile(ctx, handlers.Request{Key: env.Key, Cause: "bench-rotated"}); err != nil {
		return dr, fmt.Errorf("check %s: %w", env.Key, err)
	}
	progress := func(state string) (float64, error) {
		v, _, err := w.value("cmkd_key_rewrap_deks", map[string]string{"key": env.Key.URL(), "state": state})
		return v, err
	}
	err = waitFor(ctx, 2*time.Minute, "the rewrap to get under way", func() (bool, error) {
		done, err := progress("done")
		return done >= float64(sz.ramped), err
	})
	if err != nil {
		return dr, err
	}
	o.Say("rewrap of %d DEKs under way; disabling %d keys", sz.rewrapDEKs(), sz.disables)

	disabledAt := map[string]time.Time{}
	for _, i := range rand.Perm(len(keys))[:sz.disables] {
		at, err := disable(ctx, env.AZ, keys[i].Name)
		if err != nil {
			return dr, err
		}
		disabledAt[keys[i].Name] = at // the key's one tenant has its name
	}
	if err := waitSealed(ctx, w, sealed, disabledAt, dr.wait, interval, &dr.probes); err != nil {
		return dr, err
	}
	end := time.Now()
	dr.cpu = cpu0.until(sampleCPU())
	dr.calls, dr.throttled = env.Calls(), env.Throttled()
	checks, err := w.checks()
	if err != nil {
		return dr, err
	}
	dr.checks = minus(checks, checks0)
	done, err := progress("done")
	if err != nil {
		return dr, err
	}
	total, err := progress("total")
	if err != nil {
		return dr, err
	}
	running, _, err := w.value("cmkd_key_rewrap_running", map[string]string{"key": env.Key.URL()})
	if err != nil {
		return dr, err
	}
	dr.rewrapDone, dr.rewrapTotal, dr.rewrapRunning = int(done), int(total), running == 1

	got := sealed.snapshot()
	var last time.Time
	for t, at := range got {
		d, ok := disabledAt[t]
		if !ok {
			dr.unexpected++
			continue
		}
		dr.latencies = append(dr.latencies, at.Sub(d))
		if at.After(last) {
			last = at
		}
	}
	dr.elapsed = last.Sub(start)
	if len(dr.latencies) < len(disabledAt) {
		dr.elapsed = end.Sub(start)
		if dr.unsealed, err = unsealed(ctx, env, disabledAt, got); err != nil {
			return dr, err
		}
	}
	o.Say("%d of %d sealed; %s after the rewrap started", len(dr.latencies), len(disabledAt), dr.elapsed.Round(100*time.Millisecond))
	return dr, nil
}

// waitSealed waits until every disabled key's tenant is sealed or wait
// passes, reading the worker's probes meanwhile.
func waitSealed(ctx context.Context, w *runningWorker, sealed *seals, disabledAt map[string]time.Time,
	wait, interval time.Duration, probes *probeTimes) error {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(min(max(interval/50, 20*time.Millisecond), 2*time.Second))
	defer tick.Stop()
	finish := func() error {
		if err := sampleProbes(w, probes); err != nil {
			return err
		}
		probes.close(time.Now())
		return nil
	}
	for !allSealed(sealed.snapshot(), disabledAt) {
		select {
		case <-sealed.changed:
		case <-tick.C:
			if err := sampleProbes(w, probes); err != nil {
				return err
			}
		case <-deadline.C:
			return finish()
		case <-w.exited:
			return w.errStopped()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return finish()
}

func allSealed(got, disabledAt map[string]time.Time) bool {
	for t := range disabledAt {
		if _, ok := got[t]; !ok {
			return false
		}
	}
	return true
}

// unsealed describes the disabled keys whose tenant is not sealed: what
// the worker last recorded of each.
func unsealed(ctx context.Context, env *bench.Env, disabledAt, got map[string]time.Time) ([]string, error) {
	sts, err := env.Store.KeyStatuses(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.KeyStatus{}
	for _, st := range sts {
		byName[st.Key.Name] = st
	}
	var out []string
	for name, at := range disabledAt {
		if _, ok := got[name]; ok {
			continue
		}
		st := byName[name]
		out = append(out, fmt.Sprintf("%s: disabled at +0 s, last checked at %+.1f s (%s), last probed at %+.1f s",
			name, st.CheckedAt.Sub(at).Seconds(), st.Outcome, st.ProbedAt.Sub(at).Seconds()))
	}
	slices.Sort(out)
	return out, nil
}

// disable turns the key's current version off with azkeys, as its owner
// would, and returns when the attempt that took effect started. The vault
// is at its limit, so the owner's request may be answered 429: it is tried
// again after Retry-After, and that wait is not counted as cmkd's.
func disable(ctx context.Context, az *azkeys.Client, name string) (time.Time, error) {
	for {
		at := time.Now()
		_, err := az.UpdateKey(ctx, name, "", azkeys.UpdateKeyParameters{
			KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)},
		}, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusTooManyRequests {
			if err != nil {
				return at, fmt.Errorf("disable %s: %w", name, err)
			}
			return at, nil
		}
		wait := time.Second
		if s, perr := strconv.Atoi(re.RawResponse.Header.Get("Retry-After")); perr == nil {
			wait = time.Duration(s) * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return at, ctx.Err()
		}
	}
}
