package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/kek"
)

// MultiVault is the multi-vault rewrap benchmark: three vaults' keys
// rotated at once, each vault's rewrap held to its own limit and none
// waiting for another.
var MultiVault = bench.Scenario{Name: multiName, Title: multiTitle, Run: runMultiVault}

const (
	multiName  = "multivault"
	multiTitle = "Rewrap in three vaults at once"
	// multiVaults is how many vaults rewrap at once.
	multiVaults = 3
	// multiInstance names the worker in leases.
	multiInstance = "bench-multivault"
)

// Metric names the test checks.
const (
	mAggregate      = "3 vaults: DEKs per second, aggregate"
	mAggregateLimit = "3 vaults: aggregate ÷ (3 × per-vault limit)"
	mCallsPerDEK    = "3 vaults: Key Vault calls per DEK"
	mOneRate        = "one vault alone (baseline): DEKs per second"
	mOneLimit       = "one vault alone: ÷ per-vault limit"
	mOneCalls       = "one vault alone: Key Vault calls per DEK"
	mVsOne          = "3 vaults: aggregate ÷ (3 × one vault alone)"
	mSlowestVsOne   = "3 vaults: slowest vault ÷ one vault alone"
	mMultiFailed    = "failed DEKs (both runs)"
)

// multiSizes are one run's dimensions.
type multiSizes struct {
	tenants, perTenant int // per vault
	limit              int // emulator operations per window, each vault
	window             time.Duration
}

func (s multiSizes) deks() int          { return s.tenants * s.perTenant }
func (s multiSizes) perSecond() float64 { return float64(s.limit) / s.window.Seconds() }
func (s multiSizes) expected() time.Duration {
	return time.Duration(float64(s.deks()) / s.perSecond() * float64(time.Second))
}

func multiSizesFor(o bench.Options) multiSizes {
	// Smoke: the throttle so high it is lifted, so the run takes seconds.
	return multiSizes{tenants: bench.Pick(o, 40, 4), perTenant: bench.Pick(o, 100, 25),
		limit: bench.Pick(o, 1000, 100000), window: 10 * time.Second}
}

// vaultRun is one vault's rewrap in a fleet's run.
type vaultRun struct {
	deks      int           // DEKs the rewrap moved
	elapsed   time.Duration // from the start of the run to the vault's "rewrap completed"
	calls     int64         // Key Vault operations the vault answered by then
	throttled int64         // its 429s by then
	failed    int           // DEKs not on the new version afterwards
}

func (v vaultRun) rate() float64 { return bench.PerSecond(float64(v.deks), v.elapsed) }

// fleetRun is one rewrap of every vault of a fleet at once.
type fleetRun struct {
	vaults []vaultRun
	cpu    cpuUse
}

func (f fleetRun) sum(of func(vaultRun) float64) float64 {
	var n float64
	for _, v := range f.vaults {
		n += of(v)
	}
	return n
}

func (f fleetRun) deks() float64  { return f.sum(func(v vaultRun) float64 { return float64(v.deks) }) }
func (f fleetRun) calls() float64 { return f.sum(func(v vaultRun) float64 { return float64(v.calls) }) }
func (f fleetRun) throttled() float64 {
	return f.sum(func(v vaultRun) float64 { return float64(v.throttled) })
}
func (f fleetRun) failed() float64 {
	return f.sum(func(v vaultRun) float64 { return float64(v.failed) })
}

// elapsed is until the last vault finished.
func (f fleetRun) elapsed() time.Duration {
	var d time.Duration
	for _, v := range f.vaults {
		d = max(d, v.elapsed)
	}
	return d
}

func (f fleetRun) rate() float64 { return bench.PerSecond(f.deks(), f.elapsed()) }

func (f fleetRun) slowest() vaultRun {
	s := f.vaults[0]
	for _, v := range f.vaults[1:] {
		if v.rate() < s.rate() {
			s = v
		}
	}
	return s
}

func runMultiVault(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sz := multiSizesFor(o)
	o.Say("baseline: one vault alone, %d DEKs", sz.deks())
	one, err := rewrapFleet(ctx, o, 1, sz)
	if err != nil {
		return nil, fmt.Errorf("one vault: %w", err)
	}
	o.Say("one vault: %.0f DEK/s; now %d vaults at once, %d DEKs each", one.rate(), multiVaults, sz.deks())
	three, err := rewrapFleet(ctx, o, multiVaults, sz)
	if err != nil {
		return nil, fmt.Errorf("%d vaults: %w", multiVaults, err)
	}
	return reportMulti(sz, one, three), nil
}

// rewrapFleet starts a fleet of n vaults with sz's DEKs each and a worker,
// rotates every key and has the worker check each, as a
// KeyNewVersionCreated event would; the checks start the rewraps in the
// background. Each vault's time runs from the first request to the
// Reconciler's "rewrap completed" for its key.
func rewrapFleet(ctx context.Context, o bench.Options, n int, sz multiSizes) (*fleetRun, error) {
	dir := filepath.Join(o.Dir, fmt.Sprintf("%d-vaults", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The tap never blocks the Reconciler: a record that does not fit is
	// one this run does not wait for (a repeated rewrap, which the
	// failed-DEK count would show).
	done := make(chan logged, 4*n)
	hlog := newTap(log, func(l logged) {
		select {
		case done <- l:
		default:
		}
	}, msgRewrapCompleted, msgRewrapFailed)

	f, err := newFleet(ctx, dir, n, kek.LimiterConfig{VaultLimit: sz.perSecond()}, log)
	if err != nil {
		return nil, err
	}
	defer f.close()
	index := map[string]int{}
	seed := &seeder{st: f.store, kc: f.kek}
	for i, v := range f.vaults {
		index[v.key.String()] = i
		if err := seed.tenants(ctx, v.key, fmt.Sprintf("v%d-t", i), sz.tenants, sz.perTenant); err != nil {
			return nil, err
		}
	}
	w, err := startWorker(ctx, f.store, f.kek, multiInstance, 0, hlog, log)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	versions := make([]string, n)
	for i, v := range f.vaults {
		if versions[i], err = v.rotate(ctx); err != nil {
			return nil, err
		}
		f.kek.Invalidate(v.key)
	}
	for _, v := range f.vaults {
		throttled(v.kv, sz.limit, sz.window)
		v.kv.ResetCalls()
	}

	cpu0 := sampleCPU()
	start := time.Now()
	for _, v := range f.vaults {
		if _, err := w.Reconcile(ctx, handlers.Request{Key: v.key, Cause: "bench-rotated"}); err != nil {
			return nil, fmt.Errorf("check %s: %w", v.key, err)
		}
	}
	run := &fleetRun{vaults: make([]vaultRun, n)}
	timeout := 3*sz.expected() + time.Minute
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for left := n; left > 0; {
		select {
		case l := <-done:
			i, ok := index[l.Attr("key")]
			if !ok || run.vaults[i].elapsed != 0 {
				continue
			}
			if l.Msg == msgRewrapFailed {
				return nil, fmt.Errorf("rewrap of %s failed: %s", f.vaults[i].key, l.Attr("err"))
			}
			r := &run.vaults[i]
			r.elapsed, r.calls, r.throttled = l.At.Sub(start), f.vaults[i].calls(), f.vaults[i].throttled()
			if r.deks, err = strconv.Atoi(l.Attr("rewrapped")); err != nil {
				return nil, fmt.Errorf("rewrap of %s: rewrapped %q: %w", f.vaults[i].key, l.Attr("rewrapped"), err)
			}
			o.Say("vault %d: %d DEKs in %s", i+1, r.deks, r.elapsed.Round(100*time.Millisecond))
			left--
			if left == 0 {
				run.cpu = cpu0.until(sampleCPU())
			}
		case <-deadline.C:
			return nil, fmt.Errorf("rewraps: %w after %s", bench.ErrTimeout, timeout)
		case <-w.exited:
			return nil, w.errStopped()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for i, v := range f.vaults {
		if run.vaults[i].failed, err = failedDEKs(ctx, f.store, v.key, versions[i]); err != nil {
			return nil, err
		}
	}
	return run, nil
}

func reportMulti(sz multiSizes, one, three *fleetRun) *bench.Result {
	res := &bench.Result{Scenario: multiName, Title: multiTitle, Setup: fmt.Sprintf(
		"%d Key Vault emulators, each its own vault with one RSA-2048 key and %d DEKs across %d tenants, "+
			"each throttled to %d operations per %v (fixed window, Retry-After), latency 2 ms ± 1 ms; one kek client "+
			"(VaultLimit %.0f/s) and one SQLite store over all of them. All keys are rotated and the worker "+
			"(default probe interval and per-vault bounds) is asked to check each, as a KeyNewVersionCreated event "+
			"would; each check starts its key's rewrap in the background. A vault's time runs from the first "+
			"request to the Reconciler's \"rewrap completed\" for its key; its calls are its emulator's count "+
			"by then. Baseline, same run: the same rewrap of one vault alone (a fleet of one).",
		multiVaults, sz.deks(), sz.tenants, sz.limit, sz.window, sz.perSecond())}
	limit := sz.perSecond()
	aggLimit := three.rate() / (multiVaults * limit)
	perDEK := three.calls() / three.deks()

	res.Add(mAggregate, three.rate(), "DEK/s")
	res.Ratio(mAggregateLimit, three.rate(), multiVaults*limit)
	res.Add(mCallsPerDEK, perDEK, "calls")
	res.Add("3 vaults: time until the last vault finished", three.elapsed().Seconds(), "s")
	res.Add("3 vaults: 429s", three.throttled(), "")
	for i, v := range three.vaults {
		k := fmt.Sprintf("vault %d: ", i+1)
		res.Add(k+"DEKs per second", v.rate(), "DEK/s")
		res.Ratio(k+"÷ per-vault limit", v.rate(), limit)
		res.Add(k+"time", v.elapsed.Seconds(), "s")
		res.Add(k+"Key Vault calls per DEK", float64(v.calls)/float64(v.deks), "calls")
	}
	res.Add(mOneRate, one.rate(), "DEK/s")
	res.Ratio(mOneLimit, one.rate(), limit)
	res.Add(mOneCalls, one.calls()/one.deks(), "calls")
	res.Add("one vault alone: 429s", one.throttled(), "")
	vsOne := res.Ratio(mVsOne, three.rate(), multiVaults*one.rate())
	res.Ratio(mSlowestVsOne, three.slowest().rate(), one.rate())
	res.Add(mMultiFailed, one.failed()+three.failed(), "")
	res.Add("3 vaults: CPU per DEK (cmkd and the emulators, one process)", three.cpu.time.Seconds()/three.deks()*1e6, "µs")
	res.Ratio("3 vaults: CPU, this process (of all cores)", three.cpu.process, 1)
	res.Ratio("3 vaults: CPU, other processes (of all cores)", three.cpu.others(), 1)
	res.Ratio("one vault alone: CPU, other processes (of all cores)", one.cpu.others(), 1)

	slow := three.slowest()
	res.Goal(fmt.Sprintf("%d vaults' aggregate ≥ 0.95 of %d × the per-vault limit", multiVaults, multiVaults),
		aggLimit >= 0.95, fmt.Sprintf("%.3f", aggLimit), shortOfLimit(three, one, limit))
	res.Goal("≈ 1.0 Key Vault calls per DEK (≤ 1.05: canary, sample and probes included)", perDEK <= 1.05,
		fmt.Sprintf("%.3f", perDEK), "calls beyond one unwrap per DEK")
	res.Goal("vaults rewrap in parallel: aggregate ≥ 0.95 × 3 × one vault alone", vsOne >= 0.95,
		fmt.Sprintf("%.3f", vsOne), fmt.Sprintf("the slowest vault did %.2f× one vault alone's DEK/s; %s",
			slow.rate()/one.rate(), shortOfLimit(three, one, limit)))
	res.Goal("zero failed DEKs", one.failed()+three.failed() == 0, fmt.Sprint(one.failed()+three.failed()),
		"DEKs left on the old version")
	res.Note("Calls per DEK count everything each emulator answered from the first check to its rewrap's end: the "+
		"check that found the rotation (a GET and an unwrap), the canary's remote unwrap, the %.0f %% sample, the "+
		"worker's scheduled checks meanwhile and the GETs kek's local wraps need every 30 s.", handlers.DefaultSampleRate*100)
	return res
}

// shortOfLimit says what held the vaults below their limits: the CPUs, when
// the machine had none to spare, or else the limiters' 429 pauses.
func shortOfLimit(three, one *fleetRun, limit float64) string {
	slow := three.slowest()
	cpu := three.cpu
	if cpu.machine >= 0.9 {
		return fmt.Sprintf("CPU: the machine's %d cores were %.0f %% busy during the run, this process (cmkd and the "+
			"three emulators, %.0f µs of CPU per DEK, most of it the emulators' RSA decryptions) %.0f %% and other "+
			"processes %.0f %%: the rewraps were short of CPU, not of Key Vault's limit (%d 429s); one vault "+
			"alone reached %.3f of its limit",
			runtime.NumCPU(), cpu.machine*100, cpu.time.Seconds()/three.deks()*1e6, cpu.process*100, cpu.others()*100,
			int(three.throttled()), one.rate()/limit)
	}
	return fmt.Sprintf("the slowest vault reached %.3f of its limit (%d 429s across the vaults) with CPU to spare "+
		"(machine %.0f %% busy); one vault alone reached %.3f. Each vault's limiter finds its limit by 429s; a 429 "+
		"pauses the vault for Retry-After (whole seconds, rounded up) and the limiter then paces at what the "+
		"vault granted over its last window; the calls in flight when a window runs out draw 429s, and the "+
		"canary, the sequential sample check and the last window's few calls add to the time",
		slow.rate()/limit, int(three.throttled()), cpu.machine*100, one.rate()/limit)
}
