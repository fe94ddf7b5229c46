package store

import (
	"bytes"
	"crypto/cipher"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, DEKSize) }

func aeadOf(tb testing.TB, k []byte) cipher.AEAD {
	tb.Helper()
	a, err := newAEAD(k)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// isKey reports whether a is AES-GCM under k: it opens what k sealed.
func isKey(t *testing.T, a cipher.AEAD, k []byte) bool {
	t.Helper()
	nonce := make([]byte, nonceSize)
	sealed := aeadOf(t, k).Seal(nil, nonce, []byte("probe"), nil)
	_, err := a.Open(nil, nonce, sealed, nil)
	return err == nil
}

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
		{"bytes", newDEKCache(time.Hour, 0, CacheEntrySize), func(c *dekCache) { c.put("e", "t", key(2), now) }},
		{"replace", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.put("d", "t", key(3), now) }},
		{"wipe tenant", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.wipeTenant("t") }},
		{"wipe", newDEKCache(time.Hour, 0, 0), func(c *dekCache) { c.wipe() }},
	} {
		c.cache.put("d", "t", key(1), now)
		held := c.cache.held(t, "d")
		c.evict(c.cache)
		wantZeroed(t, c.name, held)
		if a, ok := c.cache.get("d", "t", now); ok && isKey(t, a, key(1)) {
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
	if a, ok := c.get("b1", "b", now); !ok || !isKey(t, a, key(2)) || c.len() != 1 {
		t.Fatal("wiping tenant a touched tenant b")
	}
}

// Callers own what they put and what they get: zeroing either leaves the
// cache intact, and a DEK is only served to its own tenant.
func TestCacheCopiesAndTenantBinding(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 0, 0)
	mine := key(7)
	if _, err := c.put("d", "t", mine, now); err != nil {
		t.Fatal(err)
	}
	clear(mine)
	a, ok := c.get("d", "t", now)
	if !ok || !isKey(t, a, key(7)) {
		t.Fatal("zeroing the caller's key changed the cached one")
	}
	got, ok := c.key("d", "t", now)
	if !ok || !bytes.Equal(got, key(7)) {
		t.Fatal("key copy differs from the cached key")
	}
	clear(got)
	if again, _ := c.key("d", "t", now); !bytes.Equal(again, key(7)) {
		t.Fatal("zeroing a returned copy changed the cached key")
	}
	if _, ok := c.get("d", "other", now); ok {
		t.Fatal("dek served to another tenant")
	}
	if _, ok := c.key("d", "other", now); ok {
		t.Fatal("dek bytes served to another tenant")
	}
}

// The last permitted use still gets a whole key and a working AEAD; the
// entry is zeroed after it is handed out, not before.
func TestCacheLastUseIsWhole(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 1, 0)
	c.put("d", "t", key(5), now)
	if got, ok := c.key("d", "t", now); !ok || !bytes.Equal(got, key(5)) {
		t.Fatalf("last use got %x", got)
	}
	c.put("d", "t", key(5), now)
	if a, ok := c.get("d", "t", now); !ok || !isKey(t, a, key(5)) {
		t.Fatal("last use got a broken aead")
	}
	if c.len() != 0 {
		t.Fatal("used-up entry still cached")
	}
}

func TestCacheRefusesKeyLargerThanBudget(t *testing.T) {
	c := newDEKCache(time.Hour, 0, CacheEntrySize-1)
	c.put("d", "t", key(1), time.Unix(0, 0))
	if c.len() != 0 {
		t.Fatal("cached a key larger than the byte budget")
	}
}

func TestCacheEvictsOldestFirst(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDEKCache(time.Hour, 0, 2*CacheEntrySize)
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

// An entry counts as confirmed only within the window after the start of
// the database read that confirmed it; a late, older confirmation never
// moves it forward, and a dropped entry is gone.
func TestCacheConfirmWindow(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	c := newDEKCache(time.Hour, 0, 0)
	if _, err := c.put("d", "a", key(1), t0); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.fresh("d", "a", t0, time.Second); ok {
		t.Fatal("an entry nobody confirmed counts as fresh")
	}
	c.confirm("d", "a", t0)
	c.confirm("d", "a", t0.Add(-time.Minute)) // an older read finishing late
	for _, tc := range []struct {
		id, tenant string
		at         time.Time
		within     time.Duration
		want       bool
	}{
		{"d", "a", t0.Add(700 * time.Millisecond), time.Second, true},
		{"d", "a", t0.Add(time.Second), time.Second, false},
		{"d", "b", t0, time.Second, false}, // another tenant's
		{"d", "a", t0, -1, false},          // asking on every call
		{"e", "a", t0, time.Second, false},
	} {
		if _, _, got := c.fresh(tc.id, tc.tenant, tc.at, tc.within); got != tc.want {
			t.Errorf("fresh(%s, %s, +%s, %s) = %v, want %v", tc.id, tc.tenant, tc.at.Sub(t0), tc.within, got, tc.want)
		}
		if _, got := c.confirmed(tc.id, tc.tenant, tc.at, tc.within); got != tc.want {
			t.Errorf("confirmed(%s, %s, +%s, %s) = %v, want %v", tc.id, tc.tenant, tc.at.Sub(t0), tc.within, got, tc.want)
		}
	}
	k := c.held(t, "d")
	c.drop("d", "b")
	if c.len() != 1 {
		t.Fatal("drop for another tenant removed the entry")
	}
	c.drop("d", "a")
	wantZeroed(t, "dropped DEK", k)
	if c.len() != 0 {
		t.Fatal("dropped entry still cached")
	}
}

// In the last quarter of its window an entry asks for one confirmation
// ahead of time — once, until that confirmation lands or fails — and stays
// usable meanwhile; the confirmation, counted from its read's start,
// opens a new window.
func TestCacheRefreshAhead(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	w := 100 * time.Millisecond
	c := newDEKCache(time.Hour, 0, 0)
	if _, err := c.put("d", "a", key(1), t0); err != nil {
		t.Fatal(err)
	}
	c.confirm("d", "a", t0)
	if _, refresh, ok := c.fresh("d", "a", t0.Add(74*time.Millisecond), w); !ok || refresh {
		t.Fatalf("at 74 ms: ok %v refresh %v, want usable and no refresh yet", ok, refresh)
	}
	if _, refresh, ok := c.fresh("d", "a", t0.Add(75*time.Millisecond), w); !ok || !refresh {
		t.Fatalf("at 75 ms: ok %v refresh %v, want usable and a refresh", ok, refresh)
	}
	if refresh, ok := c.confirmed("d", "a", t0.Add(80*time.Millisecond), w); !ok || refresh {
		t.Fatalf("at 80 ms: ok %v refresh %v, want usable and no second refresh", ok, refresh)
	}
	c.refreshed("d", "a") // that one failed
	if _, refresh, _ := c.fresh("d", "a", t0.Add(85*time.Millisecond), w); !refresh {
		t.Fatal("after a failed refresh, no new one is asked for")
	}
	c.confirm("d", "a", t0.Add(85*time.Millisecond))
	if _, refresh, ok := c.fresh("d", "a", t0.Add(150*time.Millisecond), w); !ok || refresh {
		t.Fatalf("at 150 ms after a refresh read at 85 ms: ok %v refresh %v, want usable", ok, refresh)
	}
	if _, _, ok := c.fresh("d", "a", t0.Add(185*time.Millisecond), w); ok {
		t.Fatal("usable past the refreshed window")
	}
}
