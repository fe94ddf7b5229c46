package replicas

import (
	"os"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// TestMain lets the scenario start this test binary again as a replica.
func TestMain(m *testing.M) {
	Serve()
	os.Exit(m.Run())
}

// The smoke run starts real replica processes on a real PostgreSQL,
// rewraps with one and with three, kills one holding a lease and checks
// that a survivor took the key over in the time the lease allows, with no
// DEK lost. Without PostgreSQL it skips, or fails where PostgreSQL is
// required.
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario)
	if len(r.Skipped) > 0 {
		if bench.PostgresRequired() {
			t.Fatalf("skipped where PostgreSQL is required: %v", r.Skipped)
		}
		t.Skip(r.Skipped)
	}
	deks, _ := r.Metric(mTotal)
	if deks < 1 {
		t.Fatalf("no DEKs: %+v", r.Metrics)
	}
	// At smoke size each vault's rewrap is a couple of seconds at its
	// limit: the aggregate is well above nothing and below three vaults'
	// limits with room for the emulator's window rounding.
	limit, _ := r.Metric("per-vault limit")
	benchtest.Metric(t, r, mOne, 0.1*limit, 3*keys*limit)
	benchtest.Metric(t, r, mMany, 0.1*limit, 3*keys*limit)
	benchtest.Metric(t, r, mRatio, 0.3, 3)
	ttl := benchtest.Metric(t, r, mTTL, 0.1, 60)
	probe, _ := r.Metric("probe interval")
	left := benchtest.Metric(t, r, mLeft, 0, ttl)
	// The lease cannot pass to a survivor before it expires, nor the key's
	// DEKs move again before that; both within TTL + probe interval and
	// some slack for this busy machine.
	gone := benchtest.Metric(t, r, mLeaseGone, 0.9*left, ttl+probe+3)
	benchtest.Metric(t, r, mResumed, gone, ttl+probe+3)
	benchtest.Metric(t, r, mVerified, deks, deks)
	if len(r.Goals) != 2 {
		t.Errorf("goals: %+v", r.Goals)
	}
	for _, g := range r.Goals {
		if g.Measured == "" {
			t.Errorf("goal %q measured nothing", g.Text)
		}
	}
}
