package layers

import (
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// The smoke run proves both tenants are read and written through the
// store, warm and cold, and that every metric and the goal are produced;
// the numbers come from `make bench`.
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario)
	for _, m := range []string{"Get warm, one layer", "Get warm, two layers", "Put warm, one layer",
		"Put warm, two layers", "Get cold, one layer", "Get cold, two layers"} {
		benchtest.Metric(t, r, m, 0.1, 1e6)
	}
	// Nothing on the warm path depends on the layers; the goal's 1.3× is
	// not robust at smoke sizes on a busy machine, twice is. Writes, a
	// commit each, swing more.
	benchtest.Metric(t, r, "Get warm, two ÷ one layer", 0.5, 2)
	benchtest.Metric(t, r, "Put warm, two ÷ one layer", 0.3, 3)
	// A cold read unwraps every layer, one Key Vault call each: exactly
	// one and two, or the cache was not dropped or a layer was skipped.
	benchtest.Metric(t, r, "Key Vault calls per cold Get, one layer", 1, 1)
	benchtest.Metric(t, r, "Key Vault calls per cold Get, two layers", 2, 2)
	// Two remote unwraps cannot be cheaper than one.
	benchtest.Metric(t, r, "Get cold, two ÷ one layer", 1.05, 5)
	if len(r.Goals) != 1 || !strings.HasPrefix(r.Goals[0].Text, "warm Get with two layers ≤ 1.3× one layer") ||
		r.Goals[0].Measured == "" {
		t.Errorf("goals %+v, want the warm Get goal measured", r.Goals)
	}
	if len(r.Notes) != 3 {
		t.Errorf("notes %q, want the command, the Put and the cold Get remarks", r.Notes)
	}
}
