package rewrap

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

func TestThrottleSmoke(t *testing.T) {
	r := benchtest.Run(t, Throttle)
	benchtest.Metric(t, r, "cmkd failed DEKs", 0, 0)
	benchtest.Metric(t, r, "cmkd Key Vault calls per DEK", 0.5, 1.2)
	benchtest.Metric(t, r, "baseline (b) failed DEKs", 0, 0)
	benchtest.Metric(t, r, "cmkd ÷ baseline (a)", 0.01, 1e6)
}

// With an AES key both wrap and unwrap are remote: two calls per DEK.
func TestHSMSmoke(t *testing.T) {
	r := benchtest.Run(t, HSM)
	benchtest.Metric(t, r, "cmkd failed DEKs", 0, 0)
	benchtest.Metric(t, r, "cmkd Key Vault calls per DEK", 1.5, 2.5)
	benchtest.Metric(t, r, "CPU per DEK, cmkd run (cmkd + emulator, one process)", 1, 1e6)
}

func TestScalingSmoke(t *testing.T) {
	r := benchtest.Run(t, Scaling)
	for _, n := range []string{"100", "300"} {
		benchtest.Metric(t, r, n+" DEKs: failed DEKs", 0, 0)
		benchtest.Metric(t, r, n+" DEKs: DEKs per second", 1, 1e6)
		benchtest.Metric(t, r, n+" DEKs: peak RSS", 1, 1e5)
	}
}
