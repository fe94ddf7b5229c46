package handlers_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

// A tenant under two keys is sealed by either, with a reason naming the
// layer, and each key's check opens only what it sealed: the platform
// key probing usable does not open a tenant whose own key is disabled.
func TestEachLayerSealsAndOpensItsOwn(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.az.CreateKey(e.ctx(), "platform", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	platform := cmkd.MustParseKeyID(string(*resp.Key.KID)).Versionless()
	adder := e.otherProcess(func(c *store.Config) { c.PlatformKey = platform })
	if _, err := adder.AddTenant(e.ctx(), "a", e.key); err != nil {
		t.Fatal(err)
	}
	if _, err := adder.AddTenant(e.ctx(), "p", cmkd.KeyID{}); err != nil {
		t.Fatal(err)
	}
	check := func(key cmkd.KeyID) handlers.Result {
		t.Helper()
		res, err := e.rec.Reconcile(e.ctx(), handlers.Request{Key: key, Cause: "test"})
		if err != nil {
			t.Fatalf("check %s: %v", key, err)
		}
		return res
	}
	state := func(id string) (string, string) {
		t.Helper()
		tn, err := e.store.Tenant(e.ctx(), id)
		if err != nil {
			t.Fatal(err)
		}
		return tn.State, tn.SealReason
	}
	platformEnabled := func(on bool) {
		t.Helper()
		if _, err := e.az.UpdateKey(e.ctx(), "platform", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil); err != nil {
			t.Fatal(err)
		}
		e.kek.Invalidate(platform)
	}

	// The customer's key disabled: its tenant seals, the platform-only one does not.
	e.setEnabled("", false)
	check(e.key)
	if s, r := state("a"); s != store.StateSealed || r != cmkd.ReasonDisabled {
		t.Fatalf("a is %s (%s) after its own key was disabled", s, r)
	}
	check(platform)
	if s, _ := state("a"); s != store.StateSealed {
		t.Fatal("the platform key's check opened a tenant its own key sealed")
	}
	if s, _ := state("p"); s != store.StateActive {
		t.Fatal("a platform-only tenant sealed for another tenant's key")
	}
	e.setEnabled("", true)
	check(e.key)
	if s, _ := state("a"); s != store.StateActive {
		t.Fatal("a stayed sealed after its own key came back")
	}

	// The platform key disabled: every tenant seals, naming the platform layer.
	platformEnabled(false)
	check(platform)
	for _, id := range []string{"a", "p"} {
		if s, r := state(id); s != store.StateSealed || r != cmkd.PlatformReason(cmkd.ReasonDisabled) {
			t.Fatalf("%s is %s (%s) after the platform key was disabled", id, s, r)
		}
	}
	check(e.key) // the customer's key is fine, but it did not seal them
	if s, _ := state("a"); s != store.StateSealed {
		t.Fatal("the customer key's check opened a tenant the platform key sealed")
	}
	platformEnabled(true)
	check(platform)
	for _, id := range []string{"a", "p"} {
		if s, _ := state(id); s != store.StateActive {
			t.Fatalf("%s stayed sealed after the platform key came back", id)
		}
	}
	sealed := e.outbox()[cmkd.KindSealed]
	layers := map[string]int{}
	for _, ev := range sealed {
		layers[ev.Layer]++
	}
	if layers[store.LayerCustomer] != 1 || layers[store.LayerPlatform] != 2 {
		t.Fatalf("sealed events by layer %v, want customer 1, platform 2", layers)
	}
}
