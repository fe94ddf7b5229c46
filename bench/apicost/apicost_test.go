package apicost

import (
	"testing"

	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// The smoke run proves the harness still encrypts and decrypts through
// all three sides and produces every metric and goal; the numbers
// themselves come from `make bench`. The bounds are loose: at smoke sizes
// on a busy machine only the order of things is certain.
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario)
	for _, k := range []string{"decrypt", "encrypt"} {
		var us [nSides]float64
		for s := range nSides {
			n := sideNames[s] + " " + k
			us[s] = benchtest.Metric(t, r, n, 0.01, 1e5)
			if p := benchtest.Metric(t, r, n+" p99", 0.01, 1e6); p < us[s]/10 {
				t.Errorf("%s p99 %.1f µs, far below its mean %.1f µs", n, p, us[s])
			}
		}
		// The Go API does AES-GCM and more; HTTP does the Go API's store
		// call and more. Neither can be much cheaper than what it wraps.
		benchtest.Metric(t, r, "Go API "+k+" ÷ AES-GCM", 0.5, 1e4)
		benchtest.Metric(t, r, "HTTP API "+k+" ÷ Go API", 0.5, 1e3)
	}
	// The data API does an HTTP round trip's work and more.
	benchtest.Metric(t, r, "HTTP API decrypt ÷ HTTP echo", 0.5, 1e3)
	benchtest.Metric(t, r, "HTTP echo ÷ Go API decrypt", 0.01, 1e5)
	// Warm means warm: no unwrap while measuring.
	benchtest.Metric(t, r, "Key Vault calls while measuring", 0, 0)
	if len(r.Goals) != 2 {
		t.Errorf("%d goals, want 2: %+v", len(r.Goals), r.Goals)
	}
	for _, g := range r.Goals {
		if g.Measured == "" {
			t.Errorf("goal %q measured nothing", g.Text)
		}
	}
	if r.Setup == "" || len(r.Notes) == 0 {
		t.Errorf("no setup or notes: %+v", r)
	}
}
