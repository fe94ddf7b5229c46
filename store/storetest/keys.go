package storetest

import (
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var keyCases = []testCase{
	{"KeysCountTenantsByState", testKeysCount},
	{"KeyStatusRoundTrip", testKeyStatus},
}

// Keys lists each key in use once, however many tenants use it, with the
// tenants counted by state.
func testKeysCount(t *testing.T, f *fixture) {
	s := f.store(nil)
	other := f.createKey("other")
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	if _, err := s.AddTenant(t.Context(), "c", other); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(t.Context(), "b", reason, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	ks, err := s.Keys(t.Context())
	if err != nil || len(ks) != 2 {
		t.Fatalf("keys = %+v, %v; want two", ks, err)
	}
	byKey := map[string]store.KeyUse{}
	for _, k := range ks {
		byKey[k.Key.String()] = k
	}
	if u := byKey[f.Key.String()]; u.Active != 1 || u.Sealed != 1 {
		t.Fatalf("key %s: %+v, want 1 active and 1 sealed tenant", f.Key, u)
	}
	if u := byKey[other.String()]; u.Active != 1 || u.Sealed != 0 {
		t.Fatalf("key %s: %+v, want 1 active tenant", other, u)
	}
}

// What one process records of a key, every process reads; a later record
// replaces it.
func testKeyStatus(t *testing.T, f *fixture) {
	s1, s2 := f.store(nil), f.store(nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := store.KeyStatus{Key: f.Key, Holder: "r1", CheckedAt: at, ProbedAt: at.Add(-time.Second), Outcome: "usable",
		Interval: time.Minute, Rewrap: store.RewrapStatus{Target: "v2", Done: 3, Total: 10, Running: true}}
	if err := s1.PutKeyStatus(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	got, err := s2.KeyStatuses(t.Context())
	if err != nil || len(got) != 1 || got[0].Key != st.Key || got[0].Holder != "r1" || !got[0].CheckedAt.Equal(at) ||
		!got[0].ProbedAt.Equal(st.ProbedAt) || got[0].Outcome != "usable" || got[0].Interval != time.Minute || got[0].Rewrap != st.Rewrap {
		t.Fatalf("statuses = %+v, %v; want %+v", got, err, st)
	}
	st.Holder, st.Outcome, st.Rewrap = "r2", "disabled", store.RewrapStatus{Target: "v2", Done: 10, Total: 10}
	if err := s2.PutKeyStatus(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if got, _ := s1.KeyStatuses(t.Context()); len(got) != 1 || got[0].Holder != "r2" || got[0].Rewrap.Running {
		t.Fatalf("after a second record: %+v", got)
	}
}
