package schedule

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// TestMultiVaultSmoke runs the scenario at smoke size (throttle lifted), or
// at full size with BENCH_FULL=1.
func TestMultiVaultSmoke(t *testing.T) {
	r := benchtest.Run(t, MultiVault)
	benchtest.Metric(t, r, mMultiFailed, 0, 0)
	benchtest.Metric(t, r, mCallsPerDEK, 0.9, 1.3)
	benchtest.Metric(t, r, mOneCalls, 0.9, 1.3)
	benchtest.Metric(t, r, mAggregate, 1, 1e6)
	benchtest.Metric(t, r, mOneRate, 1, 1e6)
	benchtest.Metric(t, r, mVsOne, 0.01, 100)
	for _, n := range []string{"1", "2", "3"} {
		benchtest.Metric(t, r, "vault "+n+": DEKs per second", 1, 1e6)
	}
	if len(r.Goals) != 4 || r.Setup == "" {
		t.Errorf("goals %d, setup %q", len(r.Goals), r.Setup)
	}
}

// TestProbeLoadSmoke runs the scenario at smoke size (20 keys, 1 s probe
// interval, stretched a little by the budget), or at full size with
// BENCH_FULL=1.
func TestProbeLoadSmoke(t *testing.T) {
	r := benchtest.Run(t, ProbeLoad)
	watched := benchtest.Metric(t, r, mWatched, 2, 1e6)
	benchtest.Metric(t, r, mInterval, 1, 1e4)
	// The worker stretches the interval to what the budget demands.
	benchtest.Metric(t, r, mIntervalExp, 0.999, 1.001)
	benchtest.Metric(t, r, mStretched, 1, 1)
	// Keys were probed, never beyond the budget. Whether every key was
	// probed in time is the goal's: the race detector and a busy machine
	// can slow the checks below the schedule.
	benchtest.Metric(t, r, mFirstRound, 1, watched)
	benchtest.Metric(t, r, mProbeShare, 1e-4, 0.11)
	benchtest.Metric(t, r, mMaxGap, 0.5, 1e4)
	// Every disabled key's tenant, and no other, was sealed. How soon is
	// the goal's: with a rewrap at full speed the checks compete with it
	// for the CPU, and the race detector and a busy machine slow both.
	benchtest.Metric(t, r, mDisables, 4, 4)
	benchtest.Metric(t, r, mSealedN, 4, 4)
	benchtest.Metric(t, r, mUnexpected, 0, 0)
	p50 := benchtest.Metric(t, r, mSealP50, 0, 60)
	benchtest.Metric(t, r, mSealP99, p50, 60)
	benchtest.Metric(t, r, mRewrapRate, 1, 1e6)
	if len(r.Goals) != 3 || r.Setup == "" {
		t.Errorf("goals %d, setup %q", len(r.Goals), r.Setup)
	}
}
