package kek

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

func roundTrip(t *testing.T, e *env, key cmkd.KeyID, d []byte) cmkd.Wrapped {
	t.Helper()
	w, err := e.kek.Wrap(t.Context(), key, d)
	if err != nil {
		t.Fatalf("wrap %s: %v", key, err)
	}
	got, err := e.kek.Unwrap(t.Context(), w)
	if err != nil {
		t.Fatalf("unwrap %s: %v", w.KID, err)
	}
	if !bytes.Equal(got, d) {
		t.Fatalf("unwrap %s returned other bytes", w.KID)
	}
	return w
}

func TestLocalWrapUnwrapsRemotelyAcrossRotation(t *testing.T) {
	e := newEnv(t, nil)
	v1 := e.create(t, "tenant-a", azkeys.KeyTypeRSA)
	e.srv.ResetCalls()
	w1 := roundTrip(t, e, e.url("tenant-a"), dek(1))
	if w1.KID != v1 || w1.Alg != "RSA-OAEP-256" {
		t.Fatalf("wrapped = %s %s, want %s RSA-OAEP-256", w1.KID, w1.Alg, v1)
	}
	if c := e.srv.Calls(); c["wrapKey"] != 0 || c["getKey"] != 1 {
		t.Fatalf("RSA wrap not local: calls %v", c)
	}

	v2 := e.rotate(t, "tenant-a")
	if _, err := e.kek.Probe(t.Context(), e.url("tenant-a")); err != nil {
		t.Fatal(err)
	}
	w2 := roundTrip(t, e, e.url("tenant-a"), dek(2))
	if w2.KID != v2 {
		t.Fatalf("after rotate wrapped under %s, want %s", w2.KID, v2)
	}
	if got, err := e.kek.Unwrap(t.Context(), w1); err != nil || !bytes.Equal(got, dek(1)) {
		t.Fatalf("DEK of the old version no longer unwraps: %v", err)
	}
}

func TestOctHSMRemoteRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "hsm", azkeys.KeyTypeOctHSM)
	e.srv.ResetCalls()
	w := roundTrip(t, e, id, dek(3))
	if w.Alg != "A256KW" || w.KID != id {
		t.Fatalf("wrapped = %s %s", w.KID, w.Alg)
	}
	if c := e.srv.Calls(); c["wrapKey"] != 1 || c["unwrapKey"] != 1 {
		t.Fatalf("oct wrap not remote: calls %v", c)
	}
}

func TestOneCallPerWrapUnwrapPair(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, "hot", azkeys.KeyTypeRSA)
	if st, _ := e.kek.Probe(t.Context(), e.url("hot")); st.Outcome != Usable {
		t.Fatalf("probe: %s", st.Outcome)
	}
	e.srv.ResetCalls()
	for i := range 20 {
		roundTrip(t, e, e.url("hot"), dek(byte(i)))
	}
	for op, n := range e.srv.Calls() {
		if op == "unwrapKey" && n != 20 || op != "unwrapKey" && n != 0 {
			t.Fatalf("calls %v, want exactly 20 unwrapKey", e.srv.Calls())
		}
	}
}

func TestLocalWrapRefused(t *testing.T) {
	e := newEnv(t, nil)
	noUnwrap := e.create(t, "wrap-only", azkeys.KeyTypeRSA, azkeys.KeyOperationWrapKey, azkeys.KeyOperationEncrypt)
	if _, err := e.kek.Wrap(t.Context(), noUnwrap, dek(4)); !errors.Is(err, ErrOperationForbidden) {
		t.Fatalf("wrap under a key without unwrapKey: %v", err)
	}

	off := e.create(t, "off", azkeys.KeyTypeRSA)
	e.update(t, off, azkeys.KeyAttributes{Enabled: ptr(false)})
	e.srv.ResetCalls()
	if _, err := e.kek.Wrap(t.Context(), off, dek(5)); !errors.Is(err, ErrDisabled) {
		t.Fatalf("wrap under a disabled version: %v", err)
	}
	if c := e.srv.Calls(); c["getKey"] != 1 || c["wrapKey"] != 0 {
		t.Fatalf("refusal should come from one probe: calls %v", c)
	}

	exp := e.create(t, "old", azkeys.KeyTypeRSA)
	e.update(t, exp, azkeys.KeyAttributes{Expires: ptr(time.Now().Add(-time.Minute))})
	if _, err := e.kek.Wrap(t.Context(), exp, dek(6)); !errors.Is(err, ErrExpired) {
		t.Fatalf("wrap under an expired version: %v", err)
	}
}

// A disable after the last probe is seen once the probe is stale: the
// public key alone would happily keep wrapping.
func TestStaleProbeIsRefreshedBeforeLocalWrap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ProbeFreshness = time.Nanosecond })
	id := e.create(t, "flip", azkeys.KeyTypeRSA)
	roundTrip(t, e, id, dek(7))
	e.update(t, id, azkeys.KeyAttributes{Enabled: ptr(false)})
	e.srv.ResetCalls()
	if _, err := e.kek.Wrap(t.Context(), id, dek(8)); !errors.Is(err, ErrDisabled) {
		t.Fatalf("wrap after disable: %v", err)
	}
	if e.srv.Calls()["getKey"] != 1 {
		t.Fatalf("stale probe not refreshed: %v", e.srv.Calls())
	}
}

func TestInvalidateForcesProbe(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "sealme", azkeys.KeyTypeRSA)
	roundTrip(t, e, id, dek(9))
	e.kek.Invalidate(e.url("sealme"))
	e.srv.ResetCalls()
	roundTrip(t, e, id, dek(10))
	if e.srv.Calls()["getKey"] != 1 {
		t.Fatalf("wrap after Invalidate did not probe: %v", e.srv.Calls())
	}
}

func TestUnwrapErrors(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "u", azkeys.KeyTypeRSA)
	w := roundTrip(t, e, id, dek(11))
	if _, err := e.kek.Unwrap(t.Context(), cmkd.Wrapped{KID: id.Versionless(), Alg: w.Alg, Value: w.Value}); !errors.Is(err, cmkd.ErrInvalidKeyID) {
		t.Fatalf("versionless unwrap: %v", err)
	}
	e.update(t, id, azkeys.KeyAttributes{Enabled: ptr(false)})
	if _, err := e.kek.Unwrap(t.Context(), w); !errors.Is(err, ErrDisabled) {
		t.Fatalf("unwrap under disabled version: %v", err)
	}
}

func TestConcurrentWrapsShareOneProbe(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, "crowd", azkeys.KeyTypeRSA)
	e.srv.SetFaults(keyvault.Faults{Latency: 50 * time.Millisecond}) // keep the probe in flight
	e.srv.ResetCalls()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() {
			if _, err := e.kek.Wrap(t.Context(), e.url("crowd"), dek(byte(i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.srv.Calls()["getKey"]; n != 1 {
		t.Fatalf("%d probes for 30 concurrent wraps, want them shared", n)
	}
}
