package storetest

import (
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

var cacheCases = []testCase{
	{"CacheMissUnwrapsThroughKEK", testCacheMiss},
	{"CacheTTL", testCacheTTL},
	{"CacheMaxUses", testCacheMaxUses},
	{"CacheMaxBytes", testCacheMaxBytes},
}

// readsUnwrapping reads key n times through s and returns the unwrapKey
// calls that took.
func (f *fixture) readsUnwrapping(s *store.Store, tenant, key string, n int) int64 {
	f.t.Helper()
	f.ResetCalls()
	for range n {
		get(f.t, s, tenant, key)
	}
	return f.Unwraps()
}

// A cold process unwraps a DEK once through Key Vault, then serves from
// memory.
func testCacheMiss(t *testing.T, f *fixture) {
	w := f.store(nil)
	f.addTenant(w, "a")
	put(t, w, "a", "k", []byte("v"))
	r := f.store(nil)
	if n := f.readsUnwrapping(r, "a", "k", 1); n != 1 {
		t.Fatalf("cold read made %d unwraps, want 1", n)
	}
	if n := f.readsUnwrapping(r, "a", "k", 5); n != 0 {
		t.Fatalf("warm reads made %d unwraps, want 0", n)
	}
	if n := f.readsUnwrapping(w, "a", "k", 5); n != 0 {
		t.Fatalf("the writer, which made the dek, unwrapped it %d times", n)
	}
}

func testCacheTTL(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.CacheTTL = time.Minute })
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("v"))
	s.Forget("a")
	if n := f.readsUnwrapping(s, "a", "k", 2); n != 1 {
		t.Fatalf("%d unwraps, want 1", n)
	}
	f.Clock.Add(59 * time.Second)
	if n := f.readsUnwrapping(s, "a", "k", 1); n != 0 {
		t.Fatalf("dek unwrapped again before its ttl (%d)", n)
	}
	f.Clock.Add(time.Second)
	if n := f.readsUnwrapping(s, "a", "k", 2); n != 1 {
		t.Fatalf("%d unwraps after the ttl, want 1", n)
	}
}

func testCacheMaxUses(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.CacheMaxUses = 3 })
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("v"))
	s.Forget("a")
	// A miss caches the DEK; it then serves three uses and is dropped.
	if n := f.readsUnwrapping(s, "a", "k", 8); n != 2 {
		t.Fatalf("8 reads at 3 uses per unwrap made %d unwraps, want 2", n)
	}
}

// CacheMaxBytes bounds the memory held (CacheEntrySize per DEK): with room
// for one DEK, two tenants read in turn evict each other.
func testCacheMaxBytes(t *testing.T, f *fixture) {
	for _, c := range []struct {
		bytes int
		want  int64
	}{{store.CacheEntrySize, 6}, {2 * store.CacheEntrySize, 0}} {
		s := f.store(func(cfg *store.Config) { cfg.CacheMaxBytes = c.bytes })
		for _, id := range []string{"a", "b"} {
			if _, err := s.Tenant(t.Context(), id); err != nil {
				f.addTenant(s, id)
			}
			put(t, s, id, "k", []byte(id))
			get(t, s, id, "k")
		}
		f.ResetCalls()
		for range 3 {
			get(t, s, "a", "k")
			get(t, s, "b", "k")
		}
		if n := f.Unwraps(); n != c.want {
			t.Fatalf("room for %d bytes: %d unwraps, want %d", c.bytes, n, c.want)
		}
	}
}
