package seal

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// TestSmoke runs the scenario at smoke size, or at full size with
// BENCH_FULL=1 (to run it alone; `make bench` runs them all).
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario) // fails if not every tenant's sealed event arrived

	// The worker, not a timeout, found the disable: within two probe
	// intervals (plus scheduling slack).
	interval := benchtest.Metric(t, r, mProbeInterval, 1, 1e6)
	benchtest.Metric(t, r, mDisableProbe, 0, 2*interval+500)
	// Sealing is what stops reads: no read may finish later than the
	// goal's slack after its tenant's seal was committed (only one already
	// past the state check), so none anywhere after the last seal plus that
	// slack. Whether all that is within 100 ms of the probe is the goal,
	// reported, not asserted: it depends on the machine's CPUs (and the
	// race detector slows every seal tenfold).
	slack := ms(readGoal)
	benchtest.Metric(t, r, mAfterSeal, -1e6, slack)
	lastSeal := benchtest.Metric(t, r, mLastSeal, 0, 1e5)
	benchtest.Metric(t, r, mFirstSeal, 0, lastSeal)
	benchtest.Metric(t, r, mReadMax, -1e6, lastSeal+slack)
	benchtest.Metric(t, r, mSealRate, 0, 1e9)
	// Every sealed event reached the stream (else Run fails), after the
	// seals and the broadcasts.
	onStream := benchtest.Metric(t, r, mOnStream, 1, 1e5)
	benchtest.Metric(t, r, mBroadcast, 1, onStream)
	benchtest.Metric(t, r, mStreamRatio, 0.001, 100)
	benchtest.Metric(t, r, mRate1, 1, 1e9)
	benchtest.Metric(t, r, mRateN, 1, 1e9)
	benchtest.Metric(t, r, mRateRatio, 0.01, 1e4)
	benchtest.Metric(t, r, mRefused, 1, 1e12)
	if len(r.Goals) != 2 || r.Setup == "" || r.Elapsed <= 0 {
		t.Errorf("goals %d, setup %q, elapsed %s", len(r.Goals), r.Setup, r.Elapsed)
	}
}

// metric fails the test unless r has name within [lo, hi], and returns it.
