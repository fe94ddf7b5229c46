package storetest

import (
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var destroyCases = []testCase{
	{"DestroyTenantShredsEverything", testDestroyTenant},
	{"DestroySealedTenant", testDestroySealed},
	{"DestroyUnknownTenant", testDestroyUnknown},
}

// Destroying a tenant deletes its DEKs, records and row with a
// tenant.destroyed event: nothing encrypted for it decrypts again, in this
// process or another that had its DEK cached, not even once a tenant of
// the same id is added back. Other tenants are untouched.
func testDestroyTenant(t *testing.T, f *fixture) {
	// Two encryptions per DEK: the tenant has several DEKs.
	tune := func(c *store.Config) { c.DEKMaxEncryptions = 2 }
	s := f.store(tune)
	other := f.store(tune)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	recordsA := putMany(t, s, "a", 4)
	recordsB := putMany(t, s, "b", 2)
	var cts [][]byte
	for i := range 3 {
		cts = append(cts, encrypt(t, s, "a", []byte{byte(i)}, []byte("row")))
	}
	ctB := encrypt(t, s, "b", []byte("b's"), nil)
	if n := dekCount(t, s, "a"); n < 2 {
		t.Fatalf("tenant a has %d DEKs, want several", n)
	}
	for _, c := range cts {
		decrypt(t, other, "a", c, []byte("row")) // other's cache holds a's DEKs
	}
	claimAll(t, s)

	if err := s.DestroyTenant(t.Context(), "a", cmkd.StatusEvent{Cause: "erasure request 42"}); err != nil {
		t.Fatal(err)
	}
	// other learns of it from the database, at the latest StateRecheck on.
	f.Clock.Add(store.DefaultStateRecheck)

	for _, r := range []*store.Store{s, other} {
		for _, c := range cts {
			_, err := r.Decrypt(t.Context(), "a", c, []byte("row"))
			wantErr(t, err, store.ErrUnknownTenant)
			wantErr(t, err, store.ErrNotFound)
		}
		_, err := r.Get(t.Context(), "a", "k00")
		wantErr(t, err, store.ErrUnknownTenant)
		_, err = r.Encrypt(t.Context(), "a", []byte("x"), nil)
		wantErr(t, err, store.ErrUnknownTenant)
		wantErr(t, r.Put(t.Context(), "a", "k00", []byte("x")), store.ErrUnknownTenant)
	}
	if ds, err := s.Backend().TenantDEKs(t.Context(), "a", "", 100); err == nil && len(ds) != 0 {
		t.Fatalf("%d DEK layers of the destroyed tenant remain", len(ds))
	}
	if counts, err := s.VersionCounts(t.Context(), f.Key); err != nil || counts[f.Version] != dekCount(t, s, "b") {
		t.Fatalf("version counts %v (%v): the destroyed tenant's DEKs are still counted", counts, err)
	}

	es := claimAll(t, s)
	if len(es) != 1 || es[0].Event.Kind != cmkd.KindTenantDestroyed || es[0].Event.Tenant != "a" ||
		es[0].Event.Cause != "erasure request 42" || es[0].Event.Key.IsZero() {
		t.Fatalf("outbox after destroy: %+v, want one tenant.destroyed for a with its key", es)
	}

	// A tenant of the same id added again has new DEKs: the old
	// ciphertexts name DEKs it does not have, and its records are gone.
	f.addTenant(s, "a")
	for _, r := range []*store.Store{s, other} {
		for _, c := range cts {
			_, err := r.Decrypt(t.Context(), "a", c, []byte("row"))
			wantErr(t, err, store.ErrIntegrity)
		}
		for k := range recordsA {
			_, err := r.Get(t.Context(), "a", k)
			wantErr(t, err, store.ErrNotFound)
		}
	}
	readsBack(t, s, "a", nil)
	c := encrypt(t, other, "a", []byte("new"), nil)
	if got := decrypt(t, s, "a", c, nil); string(got) != "new" {
		t.Fatalf("new tenant a: %q", got)
	}

	readsBack(t, other, "b", recordsB)
	if got := decrypt(t, other, "b", ctB, nil); string(got) != "b's" {
		t.Fatalf("b after destroying a: %q", got)
	}
}

// dekCount is how many DEKs the tenant has (not layers).
func dekCount(t *testing.T, s *store.Store, tenant string) int {
	t.Helper()
	ids := map[string]bool{}
	for _, d := range deks(t, s, tenant) {
		ids[d.ID] = true
	}
	return len(ids)
}

// A sealed tenant can be destroyed: a customer whose key is gone may still
// want the rest erased.
func testDestroySealed(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("v"))
	c := encrypt(t, s, "a", []byte("v"), nil)
	if err := s.Seal(t.Context(), "a", cmkd.ReasonPurged, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyTenant(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatalf("destroy a sealed tenant: %v", err)
	}
	_, err := s.Decrypt(t.Context(), "a", c, nil)
	wantErr(t, err, store.ErrUnknownTenant)
	_, err = s.Tenant(t.Context(), "a")
	wantErr(t, err, store.ErrUnknownTenant)
	ts, err := s.Tenants(t.Context())
	if err != nil || len(ts) != 0 {
		t.Fatalf("tenants after destroy: %v, %v", ts, err)
	}
}

func testDestroyUnknown(t *testing.T, f *fixture) {
	s := f.store(nil)
	err := s.DestroyTenant(t.Context(), "nobody", cmkd.StatusEvent{})
	wantErr(t, err, store.ErrUnknownTenant)
	wantErr(t, err, store.ErrNotFound)
	err = s.Backend().DestroyTenant(t.Context(), "nobody", cmkd.StatusEvent{ID: "x", Kind: cmkd.KindTenantDestroyed, Tenant: "nobody"})
	wantErr(t, err, store.ErrUnknownTenant)
	f.addTenant(s, "a")
	if err := s.DestroyTenant(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DestroyTenant(t.Context(), "a", cmkd.StatusEvent{}), store.ErrUnknownTenant)
	if es := claimAll(t, s); len(es) != 1 {
		t.Fatalf("outbox holds %d events, want the one destroy that happened", len(es))
	}
}
