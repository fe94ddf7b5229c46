package handlers_test

import (
	"errors"
	"fmt"
	"strings"
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

// TestRewrapCrashedAfterItsLastSwapReportsOnce: a rewrap that died after
// moving its last DEK, before it recorded completion (a replica killed
// there), is finished by the next check — whichever replica runs it —
// with each tenant's rewrap.completed and version.retired written once.
func TestRewrapCrashedAfterItsLastSwapReportsOnce(t *testing.T) {
	e := newEnv(t, nil)
	want := e.tenants(3, 1)
	e.reconcile() // the tenants' key version is recorded
	counts, _ := e.store.VersionCounts(e.ctx(), e.key)
	var old string
	for v := range counts {
		old = v
	}
	v2 := e.rotate()
	deks, err := e.store.ListDEKsNotAt(e.ctx(), e.key, v2, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deks {
		if _, err := e.store.RewrapDEK(e.ctx(), d, e.kid(v2), false); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the second check finds nothing left to report
		if res := e.reconcile(); res.Outcome != handlers.InStep || res.Version != v2 {
			t.Fatalf("outcome %s version %s, want in step at %s", res.Outcome, res.Version, v2)
		}
	}
	out := e.outbox()
	for _, kind := range []cmkd.Kind{cmkd.KindRewrapCompleted, cmkd.KindVersionRetired} {
		per := map[string]int{}
		for _, ev := range out[kind] {
			per[ev.Tenant]++
			if kind == cmkd.KindVersionRetired && ev.Version != old {
				t.Errorf("version.retired names %s, want the old version %s", ev.Version, old)
			}
		}
		if len(per) != 3 || per["ta"] != 1 || per["tb"] != 1 || per["tc"] != 1 {
			t.Errorf("%s events per tenant %v, want one for each of the 3", kind, per)
		}
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
	// The sealed event tells subscribers the data is gone for good.
	sealed := e.outbox()[cmkd.KindSealed]
	if len(sealed) != 1 || !strings.Contains(sealed[0].Note, "can no longer be recovered") {
		t.Fatalf("sealed events %+v, want one whose note says the data cannot be recovered", sealed)
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

// failingAfterConfirmation is a key, with a grace of a minute, that a
// check found usable, then Key Vault failing after; the check of the
// failure was within the grace.
func failingAfterConfirmation(t *testing.T, after time.Duration) *env {
	t.Helper()
	e := newEnv(t, func(c *handlers.Config) { c.UnreachableGrace = time.Minute })
	e.tenants(1, 1)
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("outcome %s, want in step", res.Outcome)
	}
	e.clock.Add(after)
	e.kv.SetFaults(keyvault.Faults{ErrorRate: 1})
	if res := e.reconcile(); res.Outcome != handlers.Waiting {
		t.Fatalf("%s after the last confirmation: outcome %s, want waiting", after, res.Outcome)
	}
	return e
}

// The grace bounds how long data is served without Key Vault confirming
// the key: it counts from the last probe that did, not from the first that
// failed (found by the chaos harness: seals came a failed check's retries
// and an interval after the grace).
func TestUnreachableGraceCountsFromTheLastConfirmation(t *testing.T) {
	e := failingAfterConfirmation(t, 50*time.Second)
	e.clock.Add(15 * time.Second) // 65 s unconfirmed, 15 s since the first failure
	if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonUnreachable {
		t.Fatalf("65 s after the last confirmation: outcome %s reason %q, want sealed/unreachable", res.Outcome, res.Reason)
	}
}

// Near the grace's end a check of a key that is not answering does not
// wait for a hung vault: its tenants seal when the grace ends, not when a
// probe begun before then gives up (kek's try timeout is 30 s).
func TestCheckNearTheGracesEndWaitsNoLongerThanItsRest(t *testing.T) {
	e := failingAfterConfirmation(t, 50*time.Second)
	e.clock.Add(9 * time.Second)
	e.kv.SetFaults(keyvault.Faults{Latency: 20 * time.Second}) // now it hangs
	start := time.Now()
	res := e.reconcile()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the check waited %s for a hung vault with 1 s of the grace left", took)
	}
	if res.Outcome != handlers.Waiting {
		t.Fatalf("outcome %s, want waiting (the grace has not ended on the test's clock)", res.Outcome)
	}
	e.clock.Add(2 * time.Second)
	if res := e.reconcile(); res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonUnreachable {
		t.Fatalf("after the grace: outcome %s reason %q, want sealed/unreachable", res.Outcome, res.Reason)
	}
	e.kv.SetFaults(keyvault.Faults{})
}

// A slow vault that answers is not cut off, however little of the grace
// its last confirmation left (found by the chaos harness: a latency spike
// sealed every tenant as unreachable).
func TestSlowVaultThatAnswersIsNotCutOff(t *testing.T) {
	e := newEnv(t, func(c *handlers.Config) { c.UnreachableGrace = time.Minute })
	e.tenants(1, 1)
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("outcome %s, want in step", res.Outcome)
	}
	e.clock.Add(59*time.Second + 500*time.Millisecond)
	e.kv.SetFaults(keyvault.Faults{Latency: 1500 * time.Millisecond})
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("a vault answering in 1.5 s, 0.5 s of grace left: outcome %s reason %q, want in step", res.Outcome, res.Reason)
	}
	e.kv.SetFaults(keyvault.Faults{})
}

// A confirmation another process recorded (a replica, this process before
// a restart) counts too: a restart does not grant a new grace.
func TestUnreachableGraceCountsARecordedConfirmation(t *testing.T) {
	e := newEnv(t, func(c *handlers.Config) { c.UnreachableGrace = time.Minute })
	e.tenants(1, 1)
	e.kv.SetFaults(keyvault.Faults{ErrorRate: 1})
	req := handlers.Request{Key: e.key, Cause: "test", Confirmed: e.clock.Now().Add(-2 * time.Minute)}
	res, err := e.rec.Reconcile(e.ctx(), req)
	if err != nil || res.Outcome != handlers.Sealed || res.Reason != cmkd.ReasonUnreachable {
		t.Fatalf("first failed check 2 min after a recorded confirmation: %s %q %v, want sealed/unreachable", res.Outcome, res.Reason, err)
	}
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

// A forged KeyNearExpiry event — anyone who can post an event can send one
// — neither publishes a false warning nor, through the warning's
// deterministic id, suppresses the real one: expiry notices are decided
// from the probed key alone.
func TestForgedNearExpiryEventChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	e.tenants(1, 1)
	exp := e.clock.Now().Add(90 * 24 * time.Hour) // well outside the 30-day notice
	if _, err := e.az.UpdateKey(e.ctx(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(exp)}}, nil); err != nil {
		t.Fatal(err)
	}
	forged := handlers.Request{Key: e.key, Cause: "forged-1"} // what the worker makes of a KeyNearExpiry event
	if _, err := e.rec.Reconcile(e.ctx(), forged); err != nil {
		t.Fatal(err)
	}
	if n := len(e.outbox()[cmkd.KindKeyNearExpiry]); n != 0 {
		t.Fatalf("a forged KeyNearExpiry event published %d key.near_expiry events, want none", n)
	}
	e.clock.Add(70 * 24 * time.Hour) // now 20 days before the expiry
	e.reconcile()
	if n := len(e.outbox()[cmkd.KindKeyNearExpiry]); n != 1 {
		t.Fatalf("%d key.near_expiry events once the key is near expiry, want the real one", n)
	}
}

// Once version.retired is out, no process makes a DEK under the retired
// version — not even one whose Key Vault client still holds a fresh probe
// naming it the latest: an operator who disables a retired version must not
// seal anybody.
func TestRetiredVersionTakesNoNewDEKs(t *testing.T) {
	e := newEnv(t, nil)
	e.tenants(1, 1)
	other := e.otherProcess(func(c *store.Config) { c.DEKMaxEncryptions = 1 }) // a new DEK per write
	if err := other.Put(e.ctx(), "ta", "x", []byte("1")); err != nil {         // its client now holds a fresh probe of v1
		t.Fatal(err)
	}
	old := e.kidVersion()
	v2 := e.rotate()
	if res := e.reconcile(); res.Outcome != handlers.Rewrapped {
		t.Fatalf("outcome %s, want the rewrap to %s", res.Outcome, v2)
	}
	if n := len(e.outbox()[cmkd.KindVersionRetired]); n != 1 {
		t.Fatalf("%d version.retired events, want 1", n)
	}
	if err := other.Put(e.ctx(), "ta", "y", []byte("2")); err != nil {
		t.Fatal(err)
	}
	counts, err := e.store.VersionCounts(e.ctx(), e.key)
	if err != nil || counts[old] != 0 {
		t.Fatalf("DEKs by version after %s was retired: %v (%v); a new DEK went under the retired version", old, counts, err)
	}
}

// One DEK Key Vault cannot unwrap (a corrupted wrapping: 400) does not
// block the key's rotation for ever: it is set aside as unreadable and
// reported, and the rest move.
func TestUnreadableDEKIsQuarantinedAndTheRestMove(t *testing.T) {
	e := newEnv(t, nil)
	want := e.tenants(3, 1)
	bad := e.dekOf("tb")
	e.corruptWrapping(bad)
	e.store.Forget("tb") // else the rewrap takes tb's DEK from the cache, and heals it
	delete(want, [2]string{"tb", "r0"})
	v2 := e.rotate()
	res, err := e.rec.Reconcile(e.ctx(), handlers.Request{Key: e.key, Cause: "test"})
	if err != nil {
		t.Fatalf("rewrap with one unreadable DEK: %v", err)
	}
	// The probe's sentinel may be the bad DEK (then the check sets it
	// aside) or the rewrap meets it: either way it is set aside once.
	if res.Rewrap == nil || res.Rewrap.Rewrapped != 2 || res.Rewrap.Total-res.Rewrap.Rewrapped != res.Rewrap.Unreadable {
		t.Fatalf("rewrap stats %+v, want the 2 readable DEKs moved", res.Rewrap)
	}
	counts, _ := e.store.VersionCounts(e.ctx(), e.key)
	if counts[v2] != 2 || len(counts) != 1 {
		t.Fatalf("readable DEKs by version %v, want both under %s", counts, v2)
	}
	evs := e.outbox()[cmkd.KindDEKUnreadable]
	if len(evs) != 1 || evs[0].Tenant != "tb" || evs[0].Reason == "" {
		t.Fatalf("dek.unreadable events %+v, want one for tb with a reason", evs)
	}
	e.readAll(want)
	if res := e.reconcile(); res.Outcome != handlers.InStep {
		t.Fatalf("next reconcile: %s, want in step (the unreadable DEK does not hold the key back)", res.Outcome)
	}
}

// A rewrap whose target version goes bad half-way (disabled in Key Vault)
// stops, puts every DEK it moved back under the previous version, which
// still works, and reports rewrap.failed: no DEK is left under a version
// that cannot unwrap it.
func TestRewrapTargetGoesBadHalfWay(t *testing.T) {
	e := newEnv(t, func(c *handlers.Config) { c.RewrapConcurrency, c.RewrapBatch = 1, 2 })
	e.tenants(3, 0)
	writer := e.otherProcess(func(c *store.Config) { c.DEKMaxEncryptions = 1 }) // a DEK per record
	want := map[[2]string][]byte{}
	for _, tn := range []string{"ta", "tb", "tc"} {
		for j := range 3 {
			k, v := fmt.Sprintf("r%d", j), []byte(tn+" secret "+fmt.Sprint(j))
			if err := writer.Put(e.ctx(), tn, k, v); err != nil {
				t.Fatal(err)
			}
			want[[2]string{tn, k}] = v
		}
	}
	old := e.kidVersion()
	v2 := e.rotate()
	var moves int
	stop := errors.New("the key's check sealed it")
	req := handlers.Request{Key: e.key, Cause: "test", Stopped: func() error {
		moves++
		switch {
		case moves == 3: // after the canary and two DEKs: the target goes bad
			e.setEnabled(v2, false)
		case moves > 3:
			return stop
		}
		return nil
	}}
	if _, err := e.rec.Reconcile(e.ctx(), req); !errors.Is(err, stop) {
		t.Fatalf("rewrap whose target was disabled: %v, want it stopped", err)
	}
	counts, _ := e.store.VersionCounts(e.ctx(), e.key)
	if counts[old] != len(want) || counts[v2] != 0 {
		t.Fatalf("DEKs by version %v after the target went bad, want all %d back under %s", counts, len(want), old)
	}
	cold := e.otherProcess(nil) // every read unwraps in Key Vault
	for k, v := range want {
		if got, err := cold.Get(e.ctx(), k[0], k[1]); err != nil || string(got) != string(v) {
			t.Fatalf("%s/%s after the failed rewrap: %q, %v", k[0], k[1], got, err)
		}
	}
	failed := e.outbox()[cmkd.KindRewrapFailed]
	if len(failed) != 3 || failed[0].DEKs == nil || !strings.Contains(failed[0].Reason, "back under") {
		t.Fatalf("rewrap.failed events %+v, want one per tenant saying the DEKs were put back", failed)
	}
}
