package store_test

import (
	"bytes"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// DestroyTenant zeroes the tenant's plaintext DEKs in the destroying
// process, and leaves other tenants' cached.
func TestDestroyZeroesCachedDEKs(t *testing.T) {
	h := storetest.NewHarness(t)
	s := newStore(t, h)
	for _, id := range []string{"a", "b"} {
		if _, err := s.AddTenant(t.Context(), id, h.Key); err != nil {
			t.Fatal(err)
		}
	}
	ct, err := s.Encrypt(t.Context(), "a", []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	held := store.CachedKeys(s, "a")
	if len(held) != 1 || bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatalf("tenant a has %d cached deks", len(held))
	}
	if err := s.DestroyTenant(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatal("destroyed tenant's dek left in memory")
	}
	if len(store.CachedKeys(s, "a")) != 0 || len(store.CachedKeys(s, "b")) != 1 {
		t.Fatal("destroying a changed what is cached for b, or kept a's")
	}
	if _, err := s.Decrypt(t.Context(), "a", ct, nil); err == nil {
		t.Fatal("decrypted after destroy")
	}
}
