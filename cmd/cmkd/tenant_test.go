package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// TestCLITenantLifecycle: add makes the first DEK under the key's current
// version at once; list and show report it; remove refuses while records
// exist unless --force; a removed tenant is not found (exit 4).
func TestCLITenantLifecycle(t *testing.T) {
	e := newCLIEnv(t, false)
	v1 := e.createKey("cmk")

	var added tenantView
	e.mustJSON(&added, "tenant", "add", "acme", "--key", e.keyURL("cmk"))
	if added.ID != "acme" || added.State != store.StateActive || added.Key.String() != e.keyURL("cmk") {
		t.Fatalf("tenant add printed %+v, want acme active on %s", added, e.keyURL("cmk"))
	}
	if out := e.must("tenant", "add", "globex", "--key", e.keyURL("cmk")); !strings.Contains(out, "globex added") {
		t.Fatalf("tenant add text: %q", out)
	}

	var shown tenantView
	e.mustJSON(&shown, "tenant", "show", "acme")
	if shown.DEKs[v1] != 1 || len(shown.DEKs) != 1 {
		t.Fatalf("acme's DEKs by version %v, want its first DEK under %s", shown.DEKs, v1)
	}
	if shown.KeyDEKs[v1] != 2 {
		t.Fatalf("key's DEKs by version %v, want both tenants' first DEKs under %s", shown.KeyDEKs, v1)
	}
	text := e.must("tenant", "show", "acme")
	for _, want := range []string{"tenant   acme", "state    active", e.keyURL("cmk"), v1 + "  1", v1 + "  2"} {
		if !strings.Contains(text, want) {
			t.Errorf("tenant show text lacks %q:\n%s", want, text)
		}
	}

	var list []tenantView
	e.mustJSON(&list, "tenant", "list")
	if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "globex" {
		t.Fatalf("tenant list %+v, want acme and globex", list)
	}
	if text := e.must("tenant", "list"); !strings.HasPrefix(text, "TENANT") || !strings.Contains(text, "globex") {
		t.Fatalf("tenant list text:\n%s", text)
	}

	e.must("put", "acme", "k1", "--value", "v")
	if errs := e.wantExit(exitError, "tenant", "remove", "acme"); !strings.Contains(errs, "--force") {
		t.Fatalf("remove of a tenant with records says %q; want a hint at --force", errs)
	}
	e.must("tenant", "remove", "acme", "--force")
	e.wantExit(exitNotFound, "tenant", "show", "acme")
	e.wantExit(exitNotFound, "get", "acme", "k1")
	e.must("tenant", "remove", "globex") // no records: no --force needed
	if out := e.must("tenant", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("tenant list after removing all: %q, want []", out)
	}
}

// TestCLITenantAddRefusesUnusableKey: a key that cannot wrap is refused when
// the tenant is added, and no half-added tenant is left behind.
func TestCLITenantAddRefusesUnusableKey(t *testing.T) {
	e := newCLIEnv(t, false)
	errs := e.wantExit(exitNotFound, "tenant", "add", "acme", "--key", e.keyURL("nope"))
	if !strings.Contains(errs, e.keyURL("nope")) {
		t.Fatalf("refusal %q does not name the key", errs)
	}
	e.createKey("off")
	e.must("vault", "disable", "off")
	if _, errs, code := e.run("tenant", "add", "acme", "--key", e.keyURL("off")); code == exitOK || !strings.Contains(errs, "disabled") {
		t.Fatalf("add on a disabled key: exit %d, %q; want a failure naming the disabled key", code, errs)
	}
	e.wantExit(exitError, "tenant", "add", "bad/id", "--key", e.keyURL("off"))
	e.wantExit(exitError, "tenant", "add", "acme", "--key", "http://plain/keys/x")
	if out := e.must("tenant", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("tenants after refused adds: %s", out)
	}
}

func TestCLITenantShowSealed(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	before := time.Now().Add(-time.Second)
	if err := e.deps().store.Seal(t.Context(), "acme", "key disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	var v tenantView
	e.mustJSON(&v, "tenant", "show", "acme")
	if v.State != store.StateSealed || v.Reason != "key disabled" || v.Since == nil || v.Since.Before(before) {
		t.Fatalf("sealed tenant shows %+v, want sealed, reason and since", v)
	}
	if text := e.must("tenant", "show", "acme"); !strings.Contains(text, "sealed (key disabled since ") {
		t.Fatalf("tenant show text of a sealed tenant:\n%s", text)
	}
	if text := e.must("tenant", "list"); !strings.Contains(text, "key disabled") {
		t.Fatalf("tenant list does not show the seal reason:\n%s", text)
	}
}
