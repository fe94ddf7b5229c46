package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var envelopeCases = []testCase{
	{"EnvelopeRoundTrip", testEnvelopeRoundTrip},
	{"EnvelopeNotSwappableWithRecord", testEnvelopeVsRecord},
	{"EnvelopeDecryptsAfterRotationAndRewrap", testEnvelopeAfterRewrap},
	{"EnvelopeTamperedFails", testEnvelopeTampered},
	{"EnvelopeWrongAADFails", testEnvelopeWrongAAD},
	{"EnvelopeOtherTenantFails", testEnvelopeOtherTenant},
	{"UnknownTenantIsDistinct", testUnknownTenant},
	{"EnvelopeSealedTenant", testEnvelopeSealed},
}

func encrypt(t *testing.T, s *store.Store, tenant string, plaintext, aad []byte) []byte {
	t.Helper()
	c, err := s.Encrypt(t.Context(), tenant, plaintext, aad)
	if err != nil {
		t.Fatalf("encrypt %s: %v", tenant, err)
	}
	return c
}

func decrypt(t *testing.T, s *store.Store, tenant string, c, aad []byte) []byte {
	t.Helper()
	p, err := s.Decrypt(t.Context(), tenant, c, aad)
	if err != nil {
		t.Fatalf("decrypt %s: %v", tenant, err)
	}
	return p
}

// A ciphertext names its DEK and opens with the same aad, in this store
// and in another process's; the same plaintext never encrypts alike.
func testEnvelopeRoundTrip(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	d := activeDEK(t, s, "a")
	other := f.store(nil)
	for _, c := range []struct{ plaintext, aad []byte }{
		{nil, nil}, {[]byte("x"), nil}, {[]byte("hello"), []byte("row 7")}, {bytes.Repeat([]byte{0xa5}, 4096), []byte{}},
	} {
		ct := encrypt(t, s, "a", c.plaintext, c.aad)
		if ct[0] != 1 || int(ct[1]) != len(d.ID) || string(ct[2:2+len(d.ID)]) != d.ID {
			t.Fatalf("ciphertext header %x does not name version 1 and dek %s", ct[:2+len(d.ID)], d.ID)
		}
		if want := 2 + len(d.ID) + 12 + len(c.plaintext) + 16; len(ct) != want {
			t.Fatalf("ciphertext of %d bytes, want %d", len(ct), want)
		}
		if bytes.Contains(ct, c.plaintext) && len(c.plaintext) > 1 {
			t.Fatal("ciphertext holds the plaintext")
		}
		for _, r := range []*store.Store{s, other} {
			if got := decrypt(t, r, "a", ct, c.aad); !bytes.Equal(got, c.plaintext) {
				t.Fatalf("decrypt = %q, want %q", got, c.plaintext)
			}
		}
		if again := encrypt(t, s, "a", c.plaintext, c.aad); bytes.Equal(again, ct) {
			t.Fatal("two encryptions of one plaintext are equal: nonce reused")
		}
	}
	_, err := s.Encrypt(t.Context(), "a", make([]byte, store.DefaultMaxRecordSize+1), nil)
	wantErr(t, err, store.ErrTooLarge)
}

// A record blob does not decrypt as an envelope ciphertext, nor does an
// envelope ciphertext read as a record: their additional data differ.
func testEnvelopeVsRecord(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("record"))
	blob, err := s.Backend().GetRecord(t.Context(), "a", "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Decrypt(t.Context(), "a", blob, nil)
	wantErr(t, err, store.ErrIntegrity)
	_, err = s.Decrypt(t.Context(), "a", blob, []byte("k"))
	wantErr(t, err, store.ErrIntegrity)
	ct := encrypt(t, s, "a", []byte("envelope"), []byte("k"))
	if err := s.Backend().PutRecord(t.Context(), "a", "k", activeDEK(t, s, "a").ID, ct); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(t.Context(), "a", "k")
	wantErr(t, err, store.ErrIntegrity)
}

// Rotation rewraps DEKs, never ciphertexts: one made before a rotation and
// a completed rewrap decrypts after it, with the old key version disabled,
// in a store that was open all along and never read it.
func testEnvelopeAfterRewrap(t *testing.T, f *fixture) {
	s := f.store(nil)
	other := f.store(nil)
	f.addTenant(s, "a")
	ct := encrypt(t, s, "a", []byte("kept elsewhere"), []byte("aad"))
	v2 := f.Rotate()
	for _, d := range listNotAt(t, s, f.Key, v2, 10) {
		if _, err := s.RewrapDEK(t.Context(), d, f.Key, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompleteRewrap(t.Context(), f.Key, v2); err != nil {
		t.Fatal(err)
	}
	f.SetEnabled(f.Version, false)
	if got := decrypt(t, other, "a", ct, []byte("aad")); string(got) != "kept elsewhere" {
		t.Fatalf("decrypt after rewrap = %q", got)
	}
	if got := decrypt(t, s, "a", ct, []byte("aad")); string(got) != "kept elsewhere" {
		t.Fatalf("decrypt after rewrap = %q", got)
	}
}

// Any changed byte, truncation or extension fails with ErrIntegrity.
func testEnvelopeTampered(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	ct := encrypt(t, s, "a", []byte("tamper with me"), []byte("aad"))
	for i := range ct {
		for _, flip := range []byte{0x01, 0x80} {
			bad := bytes.Clone(ct)
			bad[i] ^= flip
			_, err := s.Decrypt(t.Context(), "a", bad, []byte("aad"))
			if !errorsIs(err, store.ErrIntegrity) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrIntegrity", i, flip, err)
			}
		}
	}
	for n := range len(ct) {
		_, err := s.Decrypt(t.Context(), "a", ct[:n], []byte("aad"))
		if !errorsIs(err, store.ErrIntegrity) {
			t.Fatalf("truncated to %d: err = %v, want ErrIntegrity", n, err)
		}
	}
	_, err := s.Decrypt(t.Context(), "a", append(bytes.Clone(ct), 0), []byte("aad"))
	wantErr(t, err, store.ErrIntegrity)
	if got := decrypt(t, s, "a", ct, []byte("aad")); string(got) != "tamper with me" {
		t.Fatalf("the original no longer decrypts: %q", got)
	}
}

func testEnvelopeWrongAAD(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	ct := encrypt(t, s, "a", []byte("v"), []byte("row 1"))
	for _, aad := range [][]byte{nil, []byte("row 2"), []byte("row 1 "), []byte("row")} {
		_, err := s.Decrypt(t.Context(), "a", ct, aad)
		wantErr(t, err, store.ErrIntegrity)
	}
	ct = encrypt(t, s, "a", []byte("v"), nil)
	_, err := s.Decrypt(t.Context(), "a", ct, []byte{0})
	wantErr(t, err, store.ErrIntegrity)
}

// One tenant's ciphertext does not open as another's, whether or not the
// other tenant has the DEK it names.
func testEnvelopeOtherTenant(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	ct := encrypt(t, s, "a", []byte("a's"), nil)
	_, err := s.Decrypt(t.Context(), "b", ct, nil)
	wantErr(t, err, store.ErrIntegrity)
	// Even re-labelled with b's DEK id, the additional data and key differ.
	db := activeDEK(t, s, "b")
	da := activeDEK(t, s, "a")
	if len(db.ID) == len(da.ID) {
		forged := bytes.Clone(ct)
		copy(forged[2:], db.ID)
		_, err = s.Decrypt(t.Context(), "b", forged, nil)
		wantErr(t, err, store.ErrIntegrity)
	}
}

// A tenant that does not exist is ErrUnknownTenant (and ErrNotFound) for
// every call; a missing record of a tenant that exists is ErrNotFound only.
func testUnknownTenant(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	ct := encrypt(t, s, "a", []byte("v"), nil)
	ctx := t.Context()
	_, errGet := s.Get(ctx, "nobody", "k")
	_, errEnc := s.Encrypt(ctx, "nobody", []byte("v"), nil)
	_, errDec := s.Decrypt(ctx, "nobody", ct, nil)
	_, errList := s.List(ctx, "nobody", "", 10)
	_, errTenant := s.Tenant(ctx, "nobody")
	for name, err := range map[string]error{
		"get": errGet, "put": s.Put(ctx, "nobody", "k", []byte("v")), "delete": s.Delete(ctx, "nobody", "k"),
		"list": errList, "encrypt": errEnc, "decrypt": errDec, "tenant": errTenant,
		"remove": s.RemoveTenant(ctx, "nobody", true),
	} {
		if !errorsIs(err, store.ErrUnknownTenant) || !errorsIs(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown tenant: err = %v, want ErrUnknownTenant and ErrNotFound", name, err)
		}
	}
	_, err := s.Get(ctx, "a", "missing")
	wantErr(t, err, store.ErrNotFound)
	if errorsIs(err, store.ErrUnknownTenant) {
		t.Fatalf("a missing record is reported as an unknown tenant: %v", err)
	}
	err = s.Delete(ctx, "a", "missing")
	if !errorsIs(err, store.ErrNotFound) || errorsIs(err, store.ErrUnknownTenant) {
		t.Fatalf("delete of a missing record: %v", err)
	}
}

// A seal written by another process stops Encrypt and Decrypt within
// StateRecheck, though this process still caches the DEK, and without a
// Key Vault call; with StateRecheck negative, at once. Unsealing restores
// both.
func testEnvelopeSealed(t *testing.T, f *fixture) {
	for i, recheck := range []time.Duration{store.DefaultStateRecheck, -1} {
		t.Run(fmt.Sprint("recheck=", recheck), func(t *testing.T) {
			envelopeSealedWithin(t, f, fmt.Sprint("t", i), recheck)
		})
	}
}

func envelopeSealedWithin(t *testing.T, f *fixture, tenant string, recheck time.Duration) {
	tune := func(c *store.Config) { c.StateRecheck = recheck }
	s := f.store(tune)
	f.addTenant(s, tenant)
	ct := encrypt(t, s, tenant, []byte("v"), nil)
	decrypt(t, s, tenant, ct, nil) // warm
	other := f.store(tune)
	if err := other.Seal(t.Context(), tenant, cmkd.ReasonDisabled, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	if recheck > 0 {
		// Inside the window this process has not asked again: that is
		// the bound Config.StateRecheck promises, and no more.
		if got := decrypt(t, s, tenant, ct, nil); string(got) != "v" {
			t.Fatalf("inside the recheck window: %q", got)
		}
		f.Clock.Add(recheck)
	}
	_, err := s.Decrypt(t.Context(), tenant, ct, nil)
	wantSealed(t, err, tenant, cmkd.ReasonDisabled)
	_, err = s.Encrypt(t.Context(), tenant, []byte("v"), nil)
	wantSealed(t, err, tenant, cmkd.ReasonDisabled)
	if n := f.Calls(); n != 0 {
		t.Fatalf("%d Key Vault calls for a sealed tenant, want 0", n)
	}
	if err := other.Unseal(t.Context(), tenant, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if got := decrypt(t, s, tenant, ct, nil); string(got) != "v" {
		t.Fatalf("after unseal: %q", got)
	}
}
