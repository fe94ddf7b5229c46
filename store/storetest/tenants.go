package storetest

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var tenantCases = []testCase{
	{"TenantIDValidation", testTenantIDValidation},
	{"TenantAddGetList", testTenantAddGetList},
	{"TenantRemoveRefusedWhileRecords", testTenantRemoveRefused},
	{"TenantAddRefusedWhenKeyCannotWrap", testTenantKeyCannotWrap},
}

func testTenantIDValidation(t *testing.T, f *fixture) {
	s := f.store(nil)
	for _, id := range []string{"", "a.b", "a b", "t*", "t>", "é", strings.Repeat("a", 65)} {
		_, err := s.AddTenant(t.Context(), id, f.Key)
		wantErr(t, err, cmkd.ErrInvalidTenant)
		_, err = s.Get(t.Context(), id, "k")
		wantErr(t, err, cmkd.ErrInvalidTenant)
	}
	for _, id := range []string{"a", "A-z_09", strings.Repeat("a", 64)} {
		f.addTenant(s, id)
	}
	// A tenant follows its key's versions: a versioned id, or no key at
	// all, is refused.
	for _, k := range []cmkd.KeyID{f.KID(f.Version), {}} {
		_, err := s.AddTenant(t.Context(), "ok", k)
		wantErr(t, err, cmkd.ErrInvalidKeyID)
	}
	if _, err := s.Tenant(t.Context(), "ok"); err == nil {
		t.Fatal("a tenant refused for its key url exists")
	}
}

func testTenantAddGetList(t *testing.T, f *fixture) {
	s := f.store(nil)
	other := f.createKey("other")
	// Another spelling of the same key is the same key.
	spelled := cmkd.MustParseKeyID(strings.ToUpper(f.Key.URL()[:8]) + f.Key.URL()[8:] + "/")
	got, err := s.AddTenant(t.Context(), "b", spelled)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "b" || got.Key != f.Key || got.State != store.StateActive || got.CreatedAt.IsZero() {
		t.Fatalf("added %+v", got)
	}
	f.addTenant(s, "a")
	if _, err := s.AddTenant(t.Context(), "c", other); err != nil {
		t.Fatal(err)
	}
	_, err = s.AddTenant(t.Context(), "a", f.Key)
	wantErr(t, err, store.ErrExists)

	read, err := s.Tenant(t.Context(), "b")
	if err != nil || read.Key != f.Key || read.Sealed() || !read.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("tenant b = %+v, %v", read, err)
	}
	_, err = s.Tenant(t.Context(), "nobody")
	wantErr(t, err, store.ErrNotFound)

	all, err := s.Tenants(t.Context())
	if err != nil || len(all) != 3 || all[0].ID != "a" || all[1].ID != "b" || all[2].ID != "c" {
		t.Fatalf("tenants = %+v, %v", all, err)
	}
	byKey, err := s.TenantsByKey(t.Context(), f.Key)
	if err != nil || len(byKey) != 2 || byKey[0].ID != "a" || byKey[1].ID != "b" {
		t.Fatalf("tenants by key = %+v, %v", byKey, err)
	}
}

func testTenantRemoveRefused(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("v"))
	wantErr(t, s.RemoveTenant(t.Context(), "a", false), store.ErrNotEmpty)
	if got := get(t, s, "a", "k"); string(got) != "v" {
		t.Fatalf("after refused remove: %q", got)
	}
	if err := s.Delete(t.Context(), "a", "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTenant(t.Context(), "a", false); err != nil {
		t.Fatalf("remove empty tenant: %v", err)
	}
	wantErr(t, s.RemoveTenant(t.Context(), "a", false), store.ErrNotFound)

	f.addTenant(s, "b")
	putMany(t, s, "b", 3)
	if err := s.RemoveTenant(t.Context(), "b", true); err != nil {
		t.Fatalf("forced remove: %v", err)
	}
	_, err := s.Get(t.Context(), "b", "k00")
	wantErr(t, err, store.ErrNotFound)
	if ds := deks(t, s, "b"); len(ds) != 0 {
		t.Fatalf("removed tenant keeps %d deks", len(ds))
	}
	// The id can be used again, and starts empty.
	f.addTenant(s, "b")
	if keys, err := s.List(t.Context(), "b", "", 0); err != nil || len(keys) != 0 {
		t.Fatalf("re-added tenant lists %v, %v", keys, err)
	}
}

// A key that cannot wrap is refused when the tenant is added, not at its
// first write, and leaves no tenant behind.
func testTenantKeyCannotWrap(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.SetEnabled(f.Version, false)
	if _, err := s.AddTenant(t.Context(), "a", f.Key); err == nil {
		t.Fatal("tenant added on a disabled key")
	}
	_, err := s.Tenant(t.Context(), "a")
	wantErr(t, err, store.ErrNotFound)
}

// createKey makes another RSA-2048 key and returns it, versionless.
func (f *fixture) createKey(name string) cmkd.KeyID {
	f.t.Helper()
	resp, err := f.AZ.CreateKey(f.t.Context(), name, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
	}, nil)
	if err != nil {
		f.t.Fatalf("create key: %v", err)
	}
	id, err := cmkd.ParseKeyID(string(*resp.Key.KID))
	if err != nil {
		f.t.Fatal(err)
	}
	return id.Versionless()
}
