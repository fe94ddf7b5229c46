// Package benchtest runs bench scenarios from go test: at smoke size, so
// `make test` keeps the harness from rotting, or at full size with
// BENCH_FULL=1, to run one scenario alone (`make bench` runs them all).
package benchtest

import (
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
)

// Run runs s and fails the test on its error. Progress goes to the test
// log when verbose or at full size; the result is logged as JSON.
func Run(t *testing.T, s bench.Scenario) *bench.Result {
	t.Helper()
	full := os.Getenv("BENCH_FULL") != ""
	var progress io.Writer = io.Discard
	if full || testing.Verbose() {
		progress = logWriter{t}
	}
	r, err := s.Run(t.Context(), bench.Options{Smoke: !full, Dir: t.TempDir(), Progress: progress})
	if err != nil {
		t.Fatalf("scenario %s: %v", s.Name, err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Log(string(b))
	return r
}

// Metric fails the test unless r has the metric name within [lo, hi], and
// returns its value.
func Metric(t *testing.T, r *bench.Result, name string, lo, hi float64) float64 {
	t.Helper()
	v, ok := r.Metric(name)
	if !ok || v < lo || v > hi {
		t.Errorf("%s = %v (present %v), want within [%v, %v]", name, v, ok, lo, hi)
	}
	return v
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
