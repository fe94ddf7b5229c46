package rewrap

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// run runs s at smoke size, or full size with BENCH_FULL=1 (to try one
// scenario alone; `cmkd bench` is the way to run them all).
func run(t *testing.T, s bench.Scenario) *bench.Result {
	o := bench.Options{Smoke: os.Getenv("BENCH_FULL") == "", Dir: t.TempDir(), Progress: logWriter{t}}
	r, err := s.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Log(string(b))
	return r
}

// metric fails the test unless r has name within [lo, hi].
func metric(t *testing.T, r *bench.Result, name string, lo, hi float64) {
	t.Helper()
	v, ok := r.Metric(name)
	if !ok || v < lo || v > hi {
		t.Errorf("%s = %v (present %v), want within [%v, %v]", name, v, ok, lo, hi)
	}
}

func TestThrottleSmoke(t *testing.T) {
	r := run(t, Throttle)
	metric(t, r, "cmkd failed DEKs", 0, 0)
	metric(t, r, "cmkd Key Vault calls per DEK", 0.5, 1.2)
	metric(t, r, "baseline (b) failed DEKs", 0, 0)
	metric(t, r, "cmkd ÷ baseline (a)", 0.01, 1e6)
}

// With an AES key both wrap and unwrap are remote: two calls per DEK.
func TestHSMSmoke(t *testing.T) {
	r := run(t, HSM)
	metric(t, r, "cmkd failed DEKs", 0, 0)
	metric(t, r, "cmkd Key Vault calls per DEK", 1.5, 2.5)
	metric(t, r, "CPU per DEK, cmkd run (cmkd + emulator, one process)", 1, 1e6)
}

func TestScalingSmoke(t *testing.T) {
	r := run(t, Scaling)
	for _, n := range []string{"100", "300"} {
		metric(t, r, n+" DEKs: failed DEKs", 0, 0)
		metric(t, r, n+" DEKs: DEKs per second", 1, 1e6)
		metric(t, r, n+" DEKs: peak RSS", 1, 1e5)
	}
}
