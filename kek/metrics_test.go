package kek

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsExported(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "m", azkeys.KeyTypeRSA)
	roundTrip(t, e, id, dek(1))
	names := map[string]bool{}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// cmkd_kv_throttled_total is there at 0 before any 429, so that an
	// alert on increase() sees the first one.
	for _, n := range []string{"cmkd_kv_calls_total", "cmkd_kv_call_seconds", "cmkd_kv_rate_limit", "cmkd_kv_throttled_total"} {
		if !names[n] {
			t.Errorf("metric %s not exported; have %v", n, names)
		}
	}
	if got, want := testutil.ToFloat64(e.kek.metrics.rate.WithLabelValues(e.srv.URL())), e.kek.Rate(e.srv.URL()); got != want || got < DefaultInitialRate {
		t.Errorf("cmkd_kv_rate_limit = %v, Rate = %v", got, want)
	}
	if n := attempts(e, "getKey", "ok"); n != 1 {
		t.Errorf("getKey ok = %d, want 1", n)
	}
	// A second Client on the same registry shares the collectors.
	if _, err := New(Config{Credential: StaticToken("x"), Registerer: e.reg}); err != nil {
		t.Fatalf("second client on one registry: %v", err)
	}
}
