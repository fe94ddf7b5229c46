package storecost

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// The smoke run proves the harness still reads and writes through both
// sides and produces every ratio; the numbers themselves come from
// `make bench`.
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario)
	for _, m := range []string{"Get encrypted ÷ plain", "Put encrypted ÷ plain", "Get cold ÷ warm"} {
		if v, ok := r.Metric(m); !ok || v <= 0 {
			t.Errorf("%s = %v, %v", m, v, ok)
		}
	}
	// A cold read unwraps in Key Vault: it cannot be cheaper than a warm one.
	if v, _ := r.Metric("Get cold ÷ warm"); v < 2 {
		t.Errorf("cold read only %.2f× a warm one: the cache was not dropped", v)
	}
	if len(r.Goals) != 1 {
		t.Errorf("goals: %+v", r.Goals)
	}
	t.Logf("%+v", r.Metrics)
}
