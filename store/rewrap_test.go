package store_test

import (
	"bytes"
	"testing"

	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// A rewrap unwraps DEKs nobody is reading; it must not leave their plaintext
// in the cache (where it would also evict the DEKs readers use).
func TestRewrapDoesNotCacheWhatItUnwraps(t *testing.T) {
	h := storetest.NewHarness(t)
	s := newStore(t, h)
	if _, err := s.AddTenant(t.Context(), "a", h.Key); err != nil {
		t.Fatal(err)
	}
	s.Forget("a")
	d, err := s.Backend().ActiveDEK(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	h.Rotate()
	if _, err := s.RewrapDEK(t.Context(), d[0], h.Key, false); err != nil {
		t.Fatal(err)
	}
	if held := store.CachedKeys(s, "a"); len(held) != 0 {
		t.Fatalf("rewrap left %d plaintext DEKs cached", len(held))
	}
	// A DEK that was cached is used from the cache, and stays cached.
	if err := s.Put(t.Context(), "a", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	d, _ = s.Backend().ActiveDEK(t.Context(), "a")
	h.Rotate()
	h.ResetCalls()
	if _, err := s.RewrapDEK(t.Context(), d[0], h.Key, false); err != nil {
		t.Fatal(err)
	}
	if n := h.Unwraps(); n != 0 {
		t.Fatalf("rewrap of a cached DEK made %d unwraps", n)
	}
	if held := store.CachedKeys(s, "a"); len(held) != 1 || bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatal("cached DEK dropped or zeroed by a rewrap")
	}
}
