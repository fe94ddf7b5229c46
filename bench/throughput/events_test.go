package throughput

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// TestSmoke runs the scenario at smoke size, or at full size with
// BENCH_FULL=1 (to run it alone; `make bench` runs them all).
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario) // fails if events were still queued when a phase timed out

	for _, src := range []string{srcEG, srcJS} {
		// Every event published was acknowledged: none left queued or
		// dead-lettered, by the baseline, the source alone or cmkd.
		benchtest.Metric(t, r, metric(src, mUnacked), 0, 0)
		// Coalescing: fewer probes than events, but some (the worker did
		// probe the emulator for the events).
		benchtest.Metric(t, r, metric(src, mProbes), 1e-9, 0.999)
		benchtest.Metric(t, r, metric(src, mCalls), 1e-9, 10)
		// Events name the keys' current versions: nothing to rewrap.
		benchtest.Metric(t, r, metric(src, mRewrapped), 0, 0)
		for _, m := range []string{mRaw, mNoop, mCmkd, mRatio, mNoopRatio} {
			benchtest.Metric(t, r, metric(src, m), 1e-9, 1e9)
		}
	}
	if len(r.Goals) != 1 || r.Setup == "" || r.Scenario != "events" {
		t.Errorf("goals %d, setup %q, scenario %q", len(r.Goals), r.Setup, r.Scenario)
	}
}
