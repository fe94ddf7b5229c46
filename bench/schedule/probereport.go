package schedule

import (
	"fmt"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/worker"
)

// Metric names the test checks.
const (
	mWatched      = "keys watched"
	mInterval     = "effective probe interval (cmkd_vault_probe_interval_seconds)"
	mIntervalExp  = "effective interval ÷ keys × calls per check ÷ budget"
	mStretched    = "probe budget exceeded (cmkd_vault_probe_budget_exceeded)"
	mProbeRate    = "probe-only phase: Key Vault calls per second"
	mProbeShare   = "probe-only phase: calls ÷ vault limit"
	mProbeBudget  = "probe-only phase: calls ÷ probe budget"
	mFirstRound   = "keys first probed within one effective interval"
	mMaxGap       = "longest time between a key's probes ÷ effective interval"
	mProbe429     = "probe-only phase: 429s"
	mSealP50      = "disable → tenant sealed, p50"
	mSealP99      = "disable → tenant sealed, p99"
	mSealMax      = "disable → tenant sealed, max"
	mSealRatio    = "disable → sealed p99 ÷ effective interval"
	mDisables     = "keys disabled"
	mUnexpected   = "tenants sealed that were not disabled"
	mRewrapRate   = "rewrap during the disables: DEKs per second"
	mRewrapLimit  = "rewrap during the disables: ÷ vault limit"
	mRewrapOn     = "rewrap still running at the last seal"
	mSealedN      = "disabled keys' tenants sealed"
	mProbeChecks  = "probe-only phase: checks per second ÷ (keys ÷ effective interval)"
	mDisChecks    = "during the disables: checks per second ÷ (keys ÷ effective interval)"
	mDisGap       = "during the disables: longest time between a key's probes ÷ effective interval"
	mDisWaiting   = "during the disables: checks that found Key Vault throttled or unreachable"
	mDisableCalls = "during the disables: calls ÷ vault limit"
)

// budgetSlack is the share of one interval's checks that the ±10 %
// jitter can move across the ends of a phase two intervals long: the
// schedule spends its budget exactly on average, so a count over any
// finite phase is the budget give or take that.
const budgetSlack = 0.02

// schedSlack is what a check may start after it is due: the scheduler
// wakes for it, and waits for a free check slot of the vault.
const schedSlack = time.Second

func reportProbe(sz probeSizes, pr probeRun, dr disableRun) *bench.Result {
	res := &bench.Result{Scenario: probeName, Title: probeTitle, Setup: fmt.Sprintf(
		"One Key Vault emulator throttled at %d operations per %v (fixed window, Retry-After; kek's VaultLimit "+
			"the same %.0f/s), latency 2 ms ± 1 ms. %d RSA-2048 keys (imported from one key pair to spare the "+
			"emulator's key generation; each its own key with its own version and schedule), each with one "+
			"tenant and one DEK, and one more key with %d DEKs across %d tenants: %d keys watched. The worker runs "+
			"with probe interval %s, jitter ±%.0f %% and the default probe budget (%.0f %% of the vault's limit, "+
			"%.0f calls/s), no event sources. Probe-only phase: two effective intervals from the worker's start, "+
			"counting the emulator's operations and reading every key's cmkd_key_last_probe_timestamp_seconds. "+
			"Then the big key is rotated and checked (its rewrap starts in the background); once the rewrap has "+
			"moved %d DEKs, %d random keys are disabled with azkeys UpdateKey, and each "+
			"is timed from the start of the UpdateKey attempt that took effect to the store's \"tenant sealed\" "+
			"log for its tenant.",
		sz.limit, sz.window, sz.perSecond(), sz.keys, sz.rewrapDEKs(), sz.rewrapDEKs()/sz.perTenant, sz.watched(),
		sz.interval, worker.DefaultProbeJitter*100, worker.DefaultProbeBudget*100, sz.budget(), sz.ramped, sz.disables)}

	rate := bench.PerSecond(float64(pr.calls), pr.elapsed)
	share := rate / sz.perSecond()
	firstShare := bench.PerSecond(float64(pr.firstCalls), pr.first) / sz.perSecond()
	secondShare := bench.PerSecond(float64(pr.calls-pr.firstCalls), pr.elapsed-pr.first) / sz.perSecond()
	need := time.Duration(float64(callsPerCheck*sz.watched()) / sz.budget() * float64(time.Second))
	first := pr.probes.firstWithin(pr.start, pr.interval+schedSlack)
	gap := pr.probes.maxGap.Seconds() / pr.interval.Seconds()
	perInterval := float64(sz.watched()) / pr.interval.Seconds() // checks per second the schedule asks for

	res.Add(mWatched, float64(sz.watched()), "keys")
	res.Add("probe interval configured", sz.interval.Seconds(), "s")
	res.Add(mInterval, pr.interval.Seconds(), "s")
	res.Ratio(mIntervalExp, pr.interval.Seconds(), need.Seconds())
	res.Add(mStretched, b2f(pr.stretched), "")
	res.Add(mProbeRate, rate, "calls/s")
	res.Ratio(mProbeShare, rate, sz.perSecond())
	res.Ratio(mProbeBudget, rate, sz.budget())
	res.Ratio("first effective interval: calls ÷ vault limit", firstShare, 1)
	res.Ratio("second effective interval: calls ÷ vault limit", secondShare, 1)
	res.Add(mFirstRound, float64(first), "keys")
	res.Ratio(mMaxGap, pr.probes.maxGap.Seconds(), pr.interval.Seconds())
	res.Add(mProbe429, float64(pr.throttled), "")
	probeChecks := res.Ratio(mProbeChecks, bench.PerSecond(checksOnly(pr.checks), pr.elapsed), perInterval)
	res.Ratio("probe-only phase: CPU, this process (of all cores)", pr.cpu.process, 1)

	// A tenant not sealed within the wait counts as the wait: a lower
	// bound of its latency.
	lat := slices.Clone(dr.latencies)
	for range dr.disabled - len(dr.latencies) {
		lat = append(lat, dr.wait)
	}
	p50, p99, worst := bench.Percentile(lat, 50), bench.Percentile(lat, 99), bench.Percentile(lat, 100)

	ratio := p99.Seconds() / pr.interval.Seconds()
	rewrapRate := bench.PerSecond(float64(dr.rewrapDone), dr.elapsed)
	res.Add(mDisables, float64(dr.disabled), "keys")
	res.Add(mSealedN, float64(len(dr.latencies)), "keys")
	res.Add(mSealP50, p50.Seconds(), "s")
	res.Add(mSealP99, p99.Seconds(), "s")
	res.Add(mSealMax, worst.Seconds(), "s")
	res.Ratio(mSealRatio, p99.Seconds(), pr.interval.Seconds())
	res.Add(mUnexpected, float64(dr.unexpected), "")
	res.Add(mRewrapRate, rewrapRate, "DEK/s")
	res.Ratio(mRewrapLimit, rewrapRate, sz.perSecond())
	res.Add(mRewrapOn, b2f(dr.rewrapRunning && dr.rewrapDone < dr.rewrapTotal), "")
	res.Ratio(mDisableCalls, bench.PerSecond(float64(dr.calls), dr.elapsed), sz.perSecond())
	res.Add("during the disables: 429s", float64(dr.throttled), "")
	disChecks := res.Ratio(mDisChecks, bench.PerSecond(checksOnly(dr.checks), dr.elapsed), perInterval)
	res.Ratio(mDisGap, dr.probes.maxGap.Seconds(), pr.interval.Seconds())
	res.Add(mDisWaiting, dr.checks[string(handlers.Waiting)], "")
	res.Add("during the disables: checks that failed", dr.checks["error"], "")
	res.Ratio("during the disables: CPU, this process (of all cores)", dr.cpu.process, 1)
	res.Ratio("during the disables: CPU, other processes (of all cores)", dr.cpu.others(), 1)

	res.Goal(fmt.Sprintf("probe calls ≤ %.0f %% of the vault's limit (its probe budget), over two effective "+
		"intervals (±%.0f %% of the budget for checks the jitter moves across the ends)",
		worker.DefaultProbeBudget*100, budgetSlack*100),
		share <= worker.DefaultProbeBudget*(1+budgetSlack),
		fmt.Sprintf("%.2f %% (%.3f× the budget; first interval %.2f %%, second %.2f %%)",
			share*100, rate/sz.budget(), firstShare*100, secondShare*100),
		fmt.Sprintf("%d calls for %d keys in %s: %.2f calls per key per effective interval",
			pr.calls, sz.watched(), pr.elapsed.Round(time.Second),
			float64(pr.calls)/float64(sz.watched())/(pr.elapsed.Seconds()/pr.interval.Seconds())))
	res.Goal(fmt.Sprintf("every key probed within one effective interval: all first probed within it, and no "+
		"key's probes further apart than it plus its ±%.0f %% jitter (+%s for starting a check)",
		worker.DefaultProbeJitter*100, schedSlack),
		first == sz.watched() && pr.probes.maxGap <= bound(pr.interval)+schedSlack,
		fmt.Sprintf("%d of %d keys first probed within %s; longest gap %.3f× the interval (key %s)",
			first, sz.watched(), pr.interval.Round(10*time.Millisecond), gap, pr.probes.maxGapKey),
		fmt.Sprintf("the worker ran %.2f× the checks per second the schedule asks for (CPU of all cores: this "+
			"process %.0f %%, other processes %.0f %%); a check that comes due while the vault's check slots "+
			"(worker Concurrency) are busy waits, and due keys are started in the scheduler's map order, not "+
			"the earliest due first", probeChecks, pr.cpu.process*100, pr.cpu.others()*100))
	res.Goal(fmt.Sprintf("disable → sealed p99 ≤ one effective interval plus its jitter (%s), with a rewrap "+
		"in the same vault", bound(pr.interval).Round(10*time.Millisecond)),
		p99 <= bound(pr.interval) && len(dr.latencies) == dr.disabled,
		fmt.Sprintf("p99 %s%.1f s = %.2f× the effective interval %s (p50 %.1f s; %d of %d sealed)",
			atLeast(len(dr.latencies) < dr.disabled), p99.Seconds(), ratio, pr.interval.Round(10*time.Millisecond),
			p50.Seconds(), len(dr.latencies), dr.disabled),
		fmt.Sprintf("during the disables the worker ran %.2f× the checks per second the schedule asks for and a "+
			"key went %.1f× the interval between probes; %d 429s, %.0f checks found Key Vault throttled or "+
			"unreachable; CPU of all cores: this process %.0f %%, other processes %.0f %%; the rewrap did %.0f DEK/s "+
			"(%.2f of the limit). kek gives probes priority for the vault's tokens and slots only: the rewrap "+
			"competes with the checks for this process's CPU and the store's single writer",
			disChecks, dr.probes.maxGap.Seconds()/pr.interval.Seconds(), dr.throttled, dr.checks[string(handlers.Waiting)],
			dr.cpu.process*100, dr.cpu.others()*100, rewrapRate, rewrapRate/sz.perSecond()))
	for _, u := range dr.unsealed {
		res.Note("Not sealed within %s of its disable: %s.", dr.wait.Round(time.Second), u)
	}
	res.Note("The effective interval is what the budget demands: %d keys × %d calls per check ÷ %.0f calls/s = %s, "+
		"longer than the configured %s, so the worker stretches it; a disable is found at the key's next check, "+
		"uniformly within one (jittered) interval, so the p50 is about half an interval and the p99 close to a "+
		"whole one.", sz.watched(), callsPerCheck, sz.budget(), need.Round(10*time.Millisecond), sz.interval)
	res.Note("The schedule spends the budget exactly on average: each key's first check is spread uniformly over " +
		"the first interval and each next one comes an interval ±10 %% later, so the jitter moves a few per cent of " +
		"a round's checks across an interval's ends and one interval's count is the budget give or take that; " +
		"the goal is judged over both intervals.")
	return res
}

func atLeast(b bool) string {
	if b {
		return "≥ "
	}
	return ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
