package throughput

import (
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestSmoke runs the scenario at smoke size, or at full size with
// BENCH_FULL=1 (to run it alone; `cmkd bench` runs them all).
func TestSmoke(t *testing.T) {
	full := os.Getenv("BENCH_FULL") != ""
	var progress io.Writer = io.Discard
	if full || testing.Verbose() {
		progress = logWriter{t}
	}
	r, err := Scenario.Run(t.Context(), bench.Options{Smoke: !full, Dir: t.TempDir(), Progress: progress})
	if err != nil {
		t.Fatal(err) // includes: events still queued when the phase timed out
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Log(string(b))

	for _, src := range []string{srcEG, srcJS} {
		// Every event published was acknowledged: none left queued or
		// dead-lettered, by the baseline, the source alone or cmkd.
		check(t, r, metric(src, mUnacked), 0, 0)
		// Coalescing: fewer probes than events, but some (the worker did
		// probe the emulator for the events).
		check(t, r, metric(src, mProbes), 1e-9, 0.999)
		check(t, r, metric(src, mCalls), 1e-9, 10)
		// Events name the keys' current versions: nothing to rewrap.
		check(t, r, metric(src, mRewrapped), 0, 0)
		for _, m := range []string{mRaw, mNoop, mCmkd, mRatio, mNoopRatio} {
			check(t, r, metric(src, m), 1e-9, 1e9)
		}
	}
	if len(r.Goals) != 1 || r.Setup == "" || r.Scenario != "events" {
		t.Errorf("goals %d, setup %q, scenario %q", len(r.Goals), r.Setup, r.Scenario)
	}
}

// check fails the test unless r has name within [lo, hi], and returns it.
func check(t *testing.T, r *bench.Result, name string, lo, hi float64) float64 {
	t.Helper()
	v, ok := r.Metric(name)
	if !ok || v < lo || v > hi {
		t.Errorf("%s = %v (present %v), want within [%v, %v]", name, v, ok, lo, hi)
	}
	return v
}
