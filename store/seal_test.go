package store_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

func newStore(t testing.TB, h *storetest.Harness) *store.Store {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	return h.NewStore(t, b, nil)
}

// Seal zeroes the tenant's plaintext DEKs in memory, not just forgets them,
// and leaves other tenants' cached.
func TestSealZeroesCachedDEKs(t *testing.T) {
	h := storetest.NewHarness(t)
	s := newStore(t, h)
	for _, id := range []string{"a", "b"} {
		if _, err := s.AddTenant(t.Context(), id, h.Key); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(t.Context(), id, "k", []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	held := store.CachedKeys(s, "a")
	if len(held) != 1 || bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatalf("tenant a has %d cached deks", len(held))
	}
	if err := s.Seal(t.Context(), "a", "key disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatal("sealed tenant's dek left in memory")
	}
	if len(store.CachedKeys(s, "a")) != 0 || len(store.CachedKeys(s, "b")) != 1 {
		t.Fatal("seal of a changed what is cached for b, or kept a's")
	}
}

// Close zeroes every cached DEK.
func TestCloseZeroesCachedDEKs(t *testing.T) {
	h := storetest.NewHarness(t)
	s := newStore(t, h)
	if _, err := s.AddTenant(t.Context(), "a", h.Key); err != nil {
		t.Fatal(err)
	}
	held := store.CachedKeys(s, "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || !bytes.Equal(held[0], make([]byte, store.DEKSize)) {
		t.Fatal("closed store left a dek in memory")
	}
	if err := s.Put(t.Context(), "a", "k", nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("put after close = %v, want ErrClosed", err)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	h := storetest.NewHarness(t)
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ok := store.Config{Backend: b, KEK: h.KEK}
	for field, tune := range map[string]func(*store.Config){
		"Backend":           func(c *store.Config) { c.Backend = nil },
		"KEK":               func(c *store.Config) { c.KEK = nil },
		"MaxRecordSize":     func(c *store.Config) { c.MaxRecordSize = -1 },
		"DEKMaxEncryptions": func(c *store.Config) { c.DEKMaxEncryptions = 1<<32 + 1 },
		"DEKMaxAge":         func(c *store.Config) { c.DEKMaxAge = -1 },
		"CacheTTL":          func(c *store.Config) { c.CacheTTL = -1 },
		"CacheMaxUses":      func(c *store.Config) { c.CacheMaxUses = -1 },
		"CacheMaxBytes":     func(c *store.Config) { c.CacheMaxBytes = store.CacheEntrySize - 1 },
	} {
		c := ok
		tune(&c)
		if err := c.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(field)) {
			t.Errorf("%s: Validate() = %v, want it to name the field", field, err)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
