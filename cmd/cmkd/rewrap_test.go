package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
)

// rotated is a key with two tenants, each with records, whose DEKs are all
// under v1 while the key has been rotated to v2.
func rotated(t *testing.T, e *cliEnv) (v1, v2 string) {
	t.Helper()
	v1 = e.createKey("cmk")
	for _, tn := range []string{"acme", "globex"} {
		e.must("tenant", "add", tn, "--key", e.keyURL("cmk"))
		e.must("put", tn, "k", "--value", tn+" secret")
	}
	var kv keyView
	e.mustJSON(&kv, "vault", "rotate", "cmk")
	return v1, versionOf(kv.KID)
}

// TestCLIRewrapDryRunChangesNothing: the plan names the newest version,
// counts what would move, and leaves every DEK where it was.
func TestCLIRewrapDryRunChangesNothing(t *testing.T) {
	e := newCLIEnv(t, false)
	v1, v2 := rotated(t, e)
	var p plan
	e.mustJSON(&p, "rewrap", "--key", e.keyURL("cmk"), "--dry-run")
	if p.Target != v2 || p.ToMove != 2 || p.ByVer[v1] != 2 || !slices.Equal(p.Tenants, []string{"acme", "globex"}) {
		t.Fatalf("dry run %+v, want 2 DEKs of acme and globex to move from %s to %s", p, v1, v2)
	}
	text := e.must("rewrap", "--tenant", "acme", "--dry-run")
	for _, want := range []string{"latest version " + v2, v1 + "       2 DEKs  would move", "nothing was changed"} {
		if !strings.Contains(text, want) {
			t.Errorf("dry run text lacks %q:\n%s", want, text)
		}
	}
	var v tenantView
	e.mustJSON(&v, "tenant", "show", "acme")
	if v.KeyDEKs[v1] != 2 || v.KeyDEKs[v2] != 0 {
		t.Fatalf("after a dry run DEKs are %v, want all still under %s", v.KeyDEKs, v1)
	}
}

// TestCLIRewrapDryRunSkipsDisabledLatest: with the newest version disabled
// a rewrap targets the newest usable one, and the plan says the same.
func TestCLIRewrapDryRunSkipsDisabledLatest(t *testing.T) {
	e := newCLIEnv(t, false)
	v1, v2 := rotated(t, e)
	e.must("vault", "disable", "cmk", "--version", v2)
	var p plan
	e.mustJSON(&p, "rewrap", "--key", e.keyURL("cmk"), "--dry-run")
	if p.Target != v1 || p.ToMove != 0 {
		t.Fatalf("dry run with %s disabled: %+v, want target %s and nothing to move", v2, p, v1)
	}
	e.must("vault", "disable", "cmk", "--version", v1)
	e.mustJSON(&p, "rewrap", "--key", e.keyURL("cmk"), "--dry-run")
	if p.Target != "" || p.ToMove != 0 {
		t.Fatalf("dry run with every version disabled: %+v, want no target and nothing to move", p)
	}
}

// TestCLIRewrapMovesEveryDEK: rewrap --json prints progress lines and a
// summary; afterwards every DEK is under the new version and every record
// still reads; a second rewrap finds nothing to do.
func TestCLIRewrapMovesEveryDEK(t *testing.T) {
	e := newCLIEnv(t, false)
	_, v2 := rotated(t, e)
	out := e.must("rewrap", "--tenant", "acme", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last map[string]int
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &last); err != nil || last["done"] != 2 || last["total"] != 2 {
		t.Fatalf("last progress line %q (%v), want 2 of 2 done; output:\n%s", lines[len(lines)-2], err, out)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary %q: %v", lines[len(lines)-1], err)
	}
	if sum["outcome"] != "rewrapped" || sum["version"] != v2 || sum["deks_rewrapped"] != float64(2) || sum["deks_total"] != float64(2) {
		t.Fatalf("summary %v, want 2 of 2 DEKs rewrapped to %s", sum, v2)
	}

	var v tenantView
	e.mustJSON(&v, "tenant", "show", "globex") // it shares the key, so it moved too
	if len(v.KeyDEKs) != 1 || v.KeyDEKs[v2] != 2 || v.DEKs[v2] != 1 || v.Version != v2 {
		t.Fatalf("after rewrap globex shows %+v, want every DEK and the tenant at %s", v, v2)
	}
	for _, tn := range []string{"acme", "globex"} {
		if got := e.must("get", tn, "k"); got != tn+" secret" {
			t.Fatalf("%s's record reads %q after rewrap", tn, got)
		}
	}
	if text := e.must("rewrap", "--key", e.keyURL("cmk")); !strings.Contains(text, "nothing to re-wrap") {
		t.Fatalf("second rewrap printed %q, want nothing to re-wrap", text)
	}
}

// TestCLIRewrapWaitsForTheLease: while another replica holds the key's
// lease the CLI does not touch the key and says to try again — whichever
// way the key is spelled: every spelling of a key shares one lease.
func TestCLIRewrapWaitsForTheLease(t *testing.T) {
	e := newCLIEnv(t, false)
	v1, _ := rotated(t, e)
	d := e.deps()
	key := cmkd.MustParseKeyID(e.keyURL("cmk"))
	if _, err := d.store.AcquireLease(t.Context(), key.LeaseName(), "replica-2", time.Minute); err != nil {
		t.Fatal(err)
	}
	vault, _ := strings.CutSuffix(e.keyURL("cmk"), "/keys/cmk")
	for _, spelled := range []string{
		e.keyURL("cmk"),
		e.keyURL("cmk") + "/",
		vault + "/keys/CMK",
		strings.Replace(vault, "https://", "HTTPS://", 1) + "/keys/Cmk/",
	} {
		if errs := e.wantExit(exitError, "rewrap", "--key", spelled); !strings.Contains(errs, "try again") {
			t.Fatalf("rewrap --key %s under another's lease says %q", spelled, errs)
		}
	}
	counts, err := d.store.VersionCounts(t.Context(), key)
	if err != nil || counts[v1] != 2 {
		t.Fatalf("DEKs %v (%v) after a refused rewrap, want both still under %s", counts, err, v1)
	}
}

// TestCLIRewrapOfDisabledKeySeals: rewrap reconciles, it does not just
// copy wrappings: a key with no usable version seals its tenants, and the
// summary says so.
func TestCLIRewrapOfDisabledKeySeals(t *testing.T) {
	e := newCLIEnv(t, false)
	v1, _ := rotated(t, e)
	e.must("vault", "disable", "cmk")
	e.must("vault", "disable", "cmk", "--version", v1)
	var sum map[string]any
	e.mustJSON(&sum, "rewrap", "--key", e.keyURL("cmk"))
	if sum["outcome"] != "sealed" || sum["reason"] == "" {
		t.Fatalf("rewrap of a disabled key: %v, want sealed with a reason", sum)
	}
	e.wantExit(exitSealed, "get", "acme", "k")
}

func TestCLIRewrapOfMissingTenantExit4(t *testing.T) {
	e := newCLIEnv(t, false)
	e.wantExit(exitNotFound, "rewrap", "--tenant", "nobody", "--dry-run")
	e.wantExit(exitNotFound, "rewrap", "--tenant", "nobody")
}

// TestCLIRewrapDryRunAndRewrapPickOneTarget: a newest version whose key_ops
// lack wrapKey cannot take DEKs. The dry run and the rewrap itself ask the
// same decision (kek.WrapTarget), so both pick the newest version that can.
func TestCLIRewrapDryRunAndRewrapPickOneTarget(t *testing.T) {
	e := newCLIEnv(t, false)
	v1, v2 := rotated(t, e)
	az, err := e.kv.Client(kek.StaticToken(cliToken), policy.RetryOptions{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ops := []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationUnwrapKey), to.Ptr(azkeys.KeyOperationDecrypt)}
	if _, err := az.UpdateKey(t.Context(), "cmk", v2, azkeys.UpdateKeyParameters{KeyOps: ops}, nil); err != nil {
		t.Fatal(err)
	}
	var p plan
	e.mustJSON(&p, "rewrap", "--key", e.keyURL("cmk"), "--dry-run")
	if p.Target != v1 || p.ToMove != 0 {
		t.Fatalf("dry run with %s unable to wrap: %+v, want target %s and nothing to move", v2, p, v1)
	}
	var sum map[string]any
	e.mustJSON(&sum, "rewrap", "--key", e.keyURL("cmk"))
	if sum["version"] != p.Target {
		t.Fatalf("rewrap went to %v, the dry run planned %s", sum["version"], p.Target)
	}
	var v tenantView
	e.mustJSON(&v, "tenant", "show", "acme")
	if v.KeyDEKs[v1] != 2 || v.KeyDEKs[v2] != 0 {
		t.Fatalf("DEKs after the rewrap %v, want both still under %s", v.KeyDEKs, v1)
	}
}
