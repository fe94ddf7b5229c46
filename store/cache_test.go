package store

import (
	"bytes"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, DEKSize) }

// held returns the cache's own slice for id.
func (c *dekCache) held(t *testing.T, id string) []byte {
	t.Helper()
	el, ok := c.byID[id]
	if !ok {
		t.Fatalf("%s not cached", id)
	}
	return el.Value.(*cacheEntry).key
}

func wantZeroed(t *testing.T, what string, k []byte) {
	t.Helper()
	if len(k) != DEKSize || !bytes.Equal(k, make([]byte, DEKSize)) {
		t.Fatalf("%s: evicted key not zeroed: %x", what, k)
	}
}

func TestCacheZeroesOnEviction(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name  string
		cache *dekCache
		evict func(c *dekCache)
	}{
		{"ttl", newDEKCache(time.Minute, 0, 0), func(c *dekCache) { c.get("x", "t", now.Add(time.Minute)) }},
		{"uses", newDEKCache(time.Hour, 2, 0), func(c *dekCache) { c.get("d", "t", now); c.get("d", "t", now) }},
		{"bytes", newDEKCache(time.Hour, 0, DEKSize), func(c *dekCache) { c.put("e", "t", key(2), now) }},
		{"replace", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.put("d", "t", key(3), now) }},
		{"wipe tenant", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.wipeTenant("t") }},
		{"wipe", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.wipe() }},
	} {
		c.cache.put("d", "t", key(1), now)
		held := c.cache.held(t, "d")
		c.evict(c.cache)
		wantZeroed(t, c.name, held)
		if k, ok := c.cache.get("d", "t", now); ok && bytes.Equal(k, key(1)) {
			t.Fatalf("%s: key still served after eviction", c.name)
		}
	}
}

func TestCacheWipeTenantKeepsOthers(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 0, 0)
	c.put("a1", "a", key(1), now)
	c.put("b1", "b", key(2), now)
	c.put("a2", "a", key(3), now)
	a1, a2 := c.held(t, "a1"), c.held(t, "a2")
	c.wipeTenant("a")
	wantZeroed(t, "a1", a1)
	wantZeroed(t, "a2", a2)
	if k, ok := c.get("b1", "b", now); !ok || !bytes.Equal(k, key(2)) || c.len() != 1 {
		t.Fatal("wiping tenant a touched tenant b")
	}
}

// Callers own what they put and what they get: zeroing either leaves the
// cache intact, and a DEK is only served to its own tenant.
func TestCacheCopiesAndTenantBinding(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 0, 0)
	mine := key(7)
	c.put("d", "t", mine, now)
	clear(mine)
	got, ok := c.get("d", "t", now)
	if !ok || !bytes.Equal(got, key(7)) {
		t.Fatal("zeroing the caller's key changed the cached one")
	}
	clear(got)
	if again, _ := c.get("d", "t", now); !bytes.Equal(again, key(7)) {
		t.Fatal("zeroing a returned copy changed the cached key")
	}
	if _, ok := c.get("d", "other", now); ok {
		t.Fatal("dek served to another tenant")
	}
}

func TestCacheRefusesKeyLargerThanBudget(t *testing.T) {
	c := newDEKCache(time.Hour, 0, DEKSize-1)
	c.put("d", "t", key(1), time.Unix(0, 0))
	if c.len() != 0 {
		t.Fatal("cached a key larger than the byte budget")
	}
}

func TestCacheEvictsOldestFirst(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 0, 2*DEKSize)
	c.put("1", "t", key(1), now)
	c.put("2", "t", key(2), now)
	one := c.held(t, "1")
	c.put("3", "t", key(3), now)
	wantZeroed(t, "oldest", one)
	for _, id := range []string{"2", "3"} {
		if _, ok := c.get(id, "t", now); !ok {
			t.Fatalf("%s evicted instead of the oldest", id)
		}
	}
}
