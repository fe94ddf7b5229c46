package handlers_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

func TestRotateRewrapsEveryDEK(t *testing.T) {
	e := newEnv(t, nil)
	want := e.tenants(3, 4)
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("before rotation: outcome %s, want %s", res.Outcome, handlers.InStep)
	}
	counts, _ := e.store.VersionCounts(e.ctx(), e.key)
	var old string
	for v := range counts {
		old = v
	}
	v2 := e.rotate()

	res := e.reconcile()
	if res.Outcome != handlers.Rewrapped || res.Version != v2 {
		t.Fatalf("outcome %s version %s, want rewrapped to %s", res.Outcome, res.Version, v2)
	}
	if res.Rewrap.Rewrapped != 3 || res.Rewrap.Total != 3 {
		t.Fatalf("rewrap stats %+v, want 3 of 3 DEKs moved", *res.Rewrap)
	}
	counts, _ = e.store.VersionCounts(e.ctx(), e.key)
	if counts[v2] != 3 || len(counts) != 1 {
		t.Fatalf("DEKs per version %v, want all 3 under %s", counts, v2)
	}
	e.readAll(want)

	out := e.outbox()
	if n := len(out[cmkd.KindRewrapCompleted]); n != 3 {
		t.Fatalf("%d rewrap.completed events, want one per tenant", n)
	}
	ev := out[cmkd.KindRewrapCompleted][0]
	if ev.PreviousVersion != old || ev.Version != v2 || ev.Cause != "test" || ev.DEKs == nil || ev.DEKs.Total == 0 {
		t.Fatalf("rewrap.completed event %+v", ev)
	}
	if n := len(out[cmkd.KindVersionRetired]); n != 3 || out[cmkd.KindVersionRetired][0].Version != old {
		t.Fatalf("version.retired events %v, want the old version for each tenant", out[cmkd.KindVersionRetired])
	}

	// Replaying changes nothing and writes no new event.
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("replay outcome %s, want %s", res.Outcome, handlers.InStep)
	}
	again := e.outbox()
	for kind, evs := range again {
		if len(evs) != len(out[kind]) {
			t.Fatalf("replay wrote %d more %s events", len(evs)-len(out[kind]), kind)
		}
	}
}

func TestRewrapResumesFromWhatTheStoreHolds(t *testing.T) {
	e := newEnv(t, nil)
	want := e.tenants(4, 1)
	v2 := e.rotate()
	// A crashed rewrap moved some DEKs before it stopped.
	deks, err := e.store.ListDEKsNotAt(e.ctx(), e.key, v2, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deks {
		if _, err := e.store.RewrapDEK(e.ctx(), d, e.kid(v2), false); err != nil {
			t.Fatal(err)
		}
	}
	res := e.reconcile()
	if res.Outcome != handlers.Rewrapped || res.Rewrap.Rewrapped != 2 {
		t.Fatalf("outcome %s stats %+v, want the remaining 2 DEKs moved", res.Outcome, res.Rewrap)
	}
	e.readAll(want)
}

func TestDisableSealsAndEnableUnseals(t *testing.T) {
	var kicks atomic.Int64
	e := newEnv(t, func(c *handlers.Config) { c.StatusWritten = func() { kicks.Add(1) } })
	want := e.tenants(2, 2)
	counts, _ := e.store.VersionCounts(e.ctx(), e.key)
	var v1 string
	for v := range counts {
		v1 = v
	}
	e.setEnabled(v1, false)
	res := e.reconcile()
	if res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonDisabled {
		t.Fatalf("outcome %s reason %q, want sealed/disabled", res.Outcome, res.Reason)
	}
	if kicks.Load() == 0 {
		t.Fatal("sealed events written but the relay was not told (StatusWritten)")
	}
	e.kv.ResetCalls()
	_, err := e.store.Get(e.ctx(), "ta", "r0")
	var se *store.SealedError
	if !errors.As(err, &se) || se.Reason != cmkd.ReasonDisabled {
		t.Fatalf("get of a sealed tenant: %v, want SealedError(disabled)", err)
	}
	if n := e.kv.Calls()["unwrapKey"]; n != 0 {
		t.Fatalf("a sealed read made %d unwrap calls", n)
	}
	if len(e.broadcast) != 2 {
		t.Fatalf("seal broadcasts %v, want one per tenant", e.broadcast)
	}
	// Sealing again writes nothing more.
	e.reconcile()
	if n := len(e.outbox()[cmkd.KindSealed]); n != 2 {
		t.Fatalf("%d sealed events, want 2", n)
	}

	e.setEnabled(v1, true)
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("after enable: outcome %s", res.Outcome)
	}
	e.readAll(want)
	if n := len(e.outbox()[cmkd.KindUnsealed]); n != 2 {
		t.Fatalf("%d unsealed events, want 2", n)
	}
}

func TestSealReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(e *env)
		mend   func(e *env)
		reason string
	}{
		{"deleted", func(e *env) { _, err := e.az.DeleteKey(e.ctx(), "cmk", nil); must(e, err) }, func(e *env) { _, err := e.az.RecoverDeletedKey(e.ctx(), "cmk", nil); must(e, err) }, cmkd.ReasonDeleted},
		{"access denied", func(e *env) { e.kv.Revoke() }, func(e *env) { e.kv.Grant() }, cmkd.ReasonAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			want := e.tenants(1, 3)
			tc.break_(e)
			if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != tc.reason {
				t.Fatalf("outcome %s reason %q, want sealed/%s", res.Outcome, res.Reason, tc.reason)
			}
			tc.mend(e)
			if res := e.reconcile(); res.Outcome != handlers.InStep {
				t.Fatalf("after mending: outcome %s", res.Outcome)
			}
			e.readAll(want)
		})
	}
}

func TestPurgedKeySeals(t *testing.T) {
	e := newEnv(t, nil)
	e.tenants(1, 1)
	_, err := e.az.DeleteKey(e.ctx(), "cmk", nil)
	must(e, err)
	_, err = e.az.PurgeDeletedKey(e.ctx(), "cmk", nil)
	must(e, err)
	if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonPurged {
		t.Fatalf("outcome %s reason %q, want sealed/purged", res.Outcome, res.Reason)
	}
}

func TestUnreachableKeepsServingForTheGrace(t *testing.T) {
	e := newEnv(t, func(c *handlers.Config) { c.UnreachableGrace = time.Minute })
	want := e.tenants(1, 2)
	e.kv.SetFaults(keyvault.Faults{ErrorRate: 1})
	if res := e.reconcile(); res.Outcome != handlers.Waiting {
		t.Fatalf("outcome %s, want waiting within the grace", res.Outcome)
	}
	e.clock.Add(2 * time.Minute)
	if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonUnreachable {
		t.Fatalf("outcome %s reason %q, want sealed/unreachable after the grace", res.Outcome, res.Reason)
	}
	e.kv.SetFaults(keyvault.Faults{})
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("after recovery: outcome %s", res.Outcome)
	}
	e.readAll(want)
}

func TestExpiryWarnsOnce(t *testing.T) {
	e := newEnv(t, nil)
	want := e.tenants(2, 1)
	exp := e.clock.Now().Add(48 * time.Hour)
	_, err := e.az.UpdateKey(e.ctx(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(exp)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	e.reconcile()
	if n := len(e.outbox()[cmkd.KindKeyNearExpiry]); n != 2 {
		t.Fatalf("%d key.near_expiry events, want one per tenant", n)
	}
	// Key Vault judges expiry by its own clock: expire the key for real.
	_, err = e.az.UpdateKey(e.ctx(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(-time.Minute))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	e.reconcile()
	if n := len(e.outbox()[cmkd.KindKeyExpired]); n != 2 {
		t.Fatalf("%d key.expired events, want one per tenant", n)
	}
	e.readAll(want) // an expired key still unwraps: keep serving
}

func TestSealOnExpiry(t *testing.T) {
	e := newEnv(t, func(c *handlers.Config) { c.SealOnExpiry = true })
	e.tenants(1, 1)
	_, err := e.az.UpdateKey(e.ctx(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(-time.Minute))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonExpired {
		t.Fatalf("outcome %s reason %q, want sealed/expired", res.Outcome, res.Reason)
	}
}

func TestUnusedKeyIsNotProbed(t *testing.T) {
	e := newEnv(t, nil)
	e.kv.ResetCalls()
	if res := e.reconcile(); res.Outcome != handlers.NothingToDo {
		t.Fatalf("outcome %s, want %s for a key no tenant uses", res.Outcome, handlers.NothingToDo)
	}
	for op, n := range e.kv.Calls() {
		if n != 0 {
			t.Fatalf("%d %s calls for a key no tenant uses", n, op)
		}
	}
}

func must(e *env, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}
