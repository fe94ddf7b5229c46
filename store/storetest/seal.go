package storetest

import (
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var sealCases = []testCase{
	{"SealedFailsWithoutCallingKeyVault", testSealedNoKeyVault},
	{"SealByOneProcessSeenByAnother", testSealOtherProcess},
	{"SealSurvivesRestart", testSealRestart},
	{"UnsealOnlyAfterDEKUnwraps", testUnsealNeedsUnwrap},
	{"SealAndUnsealKeepData", testSealKeepsData},
	{"SealManyTenantsAtOnce", testSealTenants},
}

const reason = "key disabled"

// everyOp runs every read and write of tenant and checks each fails as
// sealed, returning one of the errors.
func everyOp(t *testing.T, s *store.Store, tenant string) *store.SealedError {
	t.Helper()
	_, err := s.Get(t.Context(), tenant, "k00")
	se := wantSealed(t, err, tenant, reason)
	wantSealed(t, s.Put(t.Context(), tenant, "k00", []byte("x")), tenant, reason)
	wantSealed(t, s.Put(t.Context(), tenant, "new", []byte("x")), tenant, reason)
	wantSealed(t, s.Delete(t.Context(), tenant, "k00"), tenant, reason)
	_, err = s.List(t.Context(), tenant, "", 0)
	wantSealed(t, err, tenant, reason)
	return se
}

// A sealed tenant fails every read and write with ErrSealed, and Key Vault
// is not asked anything, even by a process whose cache was warm.
func testSealedNoKeyVault(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	putMany(t, s, "a", 3)
	put(t, s, "b", "k", []byte("b"))
	get(t, s, "a", "k00")
	if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	se := everyOp(t, s, "a")
	if !se.Since.Equal(f.Clock.Now()) {
		t.Fatalf("sealed since %s, want %s", se.Since, f.Clock.Now())
	}
	if n := f.Calls(); n != 0 {
		t.Fatalf("sealed tenant's operations made %d Key Vault calls: %v", n, f.KV.Calls())
	}
	if got := get(t, s, "b", "k"); string(got) != "b" {
		t.Fatal("sealing one tenant changed another")
	}
	tn, err := s.Tenant(t.Context(), "a")
	if err != nil || !tn.Sealed() || tn.SealReason != reason {
		t.Fatalf("tenant = %+v, %v", tn, err)
	}
}

// A seal written by one process takes effect at the next operation of
// another process sharing the database, which drops its cached DEKs.
func testSealOtherProcess(t *testing.T, f *fixture) {
	s1, s2 := f.store(nil), f.store(nil)
	f.addTenant(s1, "a")
	want := putMany(t, s1, "a", 3)
	readsBack(t, s2, "a", want)
	if err := s1.Seal(t.Context(), "a", reason, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	everyOp(t, s2, "a")
	if n := f.Calls(); n != 0 {
		t.Fatalf("the other process made %d Key Vault calls", n)
	}
	if err := s1.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if n := f.readsUnwrapping(s2, "a", "k00", 2); n != 1 {
		t.Fatalf("the other process read with %d unwraps after the seal, want 1 (its cache wiped)", n)
	}
	readsBack(t, s2, "a", want)
}

// A sealed tenant is still sealed after a restart; unsealed, every record
// reads back byte-identical.
func testSealRestart(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 5)
	if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.Clock.Add(time.Hour)
	r := f.store(nil)
	f.ResetCalls()
	everyOp(t, r, "a")
	if n := f.Calls(); n != 0 {
		t.Fatalf("sealed tenant after restart made %d Key Vault calls", n)
	}
	if err := r.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	readsBack(t, r, "a", want)
}

// Unseal proves Key Vault unwraps again before it lets anything through.
func testUnsealNeedsUnwrap(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 2)
	if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	f.SetEnabled(f.Version, false)
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err == nil {
		t.Fatal("unsealed while the key version is disabled")
	}
	f.SetEnabled(f.Version, true)
	f.KV.Revoke()
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err == nil {
		t.Fatal("unsealed while access is revoked")
	}
	_, err := s.Get(t.Context(), "a", "k00")
	wantSealed(t, err, "a", reason)
	f.KV.Grant()
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	readsBack(t, s, "a", want)
	if es := claimAll(t, s); len(es) != 2 || es[0].Event.Kind != cmkd.KindSealed || es[1].Event.Kind != cmkd.KindUnsealed {
		t.Fatalf("outbox %v, want one sealed then one unsealed", kinds(es))
	}
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatalf("unseal of an active tenant: %v", err)
	}
	if es := claimAll(t, s); len(es) != 0 {
		t.Fatalf("unseal of an active tenant wrote %v", kinds(es))
	}
}

// Seal and unseal change state only: every DEK and record is still there.
func testSealKeepsData(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.DEKMaxEncryptions = 2 })
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 5)
	before := deks(t, s, "a")
	for range 2 {
		if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if after := deks(t, s, "a"); len(after) != len(before) {
		t.Fatalf("sealed tenant has %d deks, had %d", len(after), len(before))
	}
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	wrapped := map[string]string{}
	for _, d := range deks(t, s, "a") {
		wrapped[d.ID] = string(d.Current.Value)
	}
	for _, d := range before {
		if wrapped[d.ID] != string(d.Current.Value) {
			t.Fatalf("seal and unseal changed or lost dek %s", d.ID)
		}
	}
	readsBack(t, s, "a", want)
	if es := claimAll(t, s); len(es) != 2 {
		t.Fatalf("sealing twice and unsealing wrote %v, want sealed, unsealed", kinds(es))
	}
}

// SealTenants seals several tenants in one call: each fails every
// operation afterwards without Key Vault calls, one sealed event per tenant it
// changed reaches the outbox, and a tenant already sealed keeps its reason,
// its time and sends no second event.
func testSealTenants(t *testing.T, f *fixture) {
	s := f.store(nil)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.addTenant(s, id)
		put(t, s, id, "k00", []byte(id))
	}
	if err := s.Seal(t.Context(), "c", "earlier", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	claimAll(t, s)
	f.Clock.Add(time.Minute)
	evs := []cmkd.StatusEvent{{Tenant: "a"}, {Tenant: "b"}, {Tenant: "c"}}
	changed, err := s.SealTenants(t.Context(), reason, evs)
	if err != nil || len(changed) != 2 || changed[0] != "a" || changed[1] != "b" {
		t.Fatalf("sealed %v, %v; want [a b]", changed, err)
	}
	f.ResetCalls()
	for _, id := range []string{"a", "b"} {
		if se := everyOp(t, s, id); !se.Since.Equal(f.Clock.Now()) {
			t.Fatalf("%s sealed since %s, want %s", id, se.Since, f.Clock.Now())
		}
	}
	if n := f.Calls(); n != 0 {
		t.Fatalf("sealed tenants' operations made %d Key Vault calls", n)
	}
	if tn, _ := s.Tenant(t.Context(), "c"); tn.SealReason != "earlier" {
		t.Fatalf("already sealed tenant's reason changed to %q", tn.SealReason)
	}
	if got := get(t, s, "d", "k00"); string(got) != "d" {
		t.Fatal("sealing others changed tenant d")
	}
	es := claimAll(t, s)
	if k := kinds(es); len(k) != 2 || k[0] != cmkd.KindSealed || es[0].Event.Tenant != "a" || es[1].Event.Tenant != "b" ||
		es[0].Event.Reason != reason {
		t.Fatalf("outbox after sealing a, b (c already sealed): %+v", es)
	}
}
