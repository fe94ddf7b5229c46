package store

import (
	"container/list"
	"crypto/cipher"
	"sync"
	"time"
)

// dekCache holds plaintext DEKs in memory only, bounded by age, by number of
// uses and by total bytes. Evicted keys are zeroed. Callers get the entry's
// AES-GCM instance, never the key bytes, so eviction never pulls a key out
// from under an encryption in flight.
//
// Each entry builds its AEAD once. Go's AES key schedule cannot be zeroed,
// so the alternative — a fresh AEAD per record — would leave one unzeroed
// schedule in the garbage heap per read; one per cached DEK is fewer, and
// reads skip the key expansion (see docs/benchmarks.md).
type dekCache struct {
	ttl      time.Duration
	maxUses  int64
	maxBytes int

	mu    sync.Mutex
	byID  map[string]*list.Element // of *cacheEntry
	order *list.List               // oldest load first
	bytes int
}

type cacheEntry struct {
	id, tenant string
	key        []byte
	aead       cipher.AEAD
	loaded     time.Time
	uses       int64
	// checked is when the database last confirmed the entry (see
	// Config.StateRecheck); zero until confirm. refreshing says a
	// confirmation ahead of the window's end is under way.
	checked    time.Time
	refreshing bool
}

// CacheEntrySize is what one cached DEK costs against Config.CacheMaxBytes:
// the key, its AES-GCM state (768 bytes measured with go1.26 on amd64) and
// the bookkeeping around them. Counting only the 32 key bytes let a
// 1 MiB budget hold 40 MiB.
const CacheEntrySize = DEKSize + 1024

func newDEKCache(ttl time.Duration, maxUses int64, maxBytes int) *dekCache {
	return &dekCache{ttl: ttl, maxUses: maxUses, maxBytes: maxBytes, byID: map[string]*list.Element{}, order: list.New()}
}

// get returns the AEAD of the tenant's DEK id, counting one use. A DEK
// cached for another tenant is not returned.
func (c *dekCache) get(id, tenant string, now time.Time) (cipher.AEAD, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.use(id, tenant, now)
	if !ok {
		return nil, false
	}
	defer c.spent(e)
	return e.aead, true
}

// fresh returns the AEAD of the tenant's DEK id, counting one use, only if
// the database confirmed the entry less than within before now. It is the
// whole of a warm envelope call's bookkeeping, so it looks the entry up
// once. refresh asks the caller to confirm the entry again in the
// background: its last quarter of the window has begun and nobody is
// confirming it yet.
func (c *dekCache) fresh(id, tenant string, now time.Time, within time.Duration) (a cipher.AEAD, refresh, ok bool) {
	if within <= 0 {
		return nil, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.confirmedLocked(id, tenant, now, within)
	if !ok {
		return nil, false, false
	}
	refresh = c.refreshLocked(e, now, within)
	e.uses++
	a = e.aead
	c.spent(e)
	return a, refresh, true
}

// confirmed reports whether the database confirmed the tenant's entry id
// less than within before now, and whether to confirm it again ahead of
// time, as fresh does.
func (c *dekCache) confirmed(id, tenant string, now time.Time, within time.Duration) (refresh, ok bool) {
	if within <= 0 {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.confirmedLocked(id, tenant, now, within)
	if !ok {
		return false, false
	}
	return c.refreshLocked(e, now, within), true
}

func (c *dekCache) confirmedLocked(id, tenant string, now time.Time, within time.Duration) (*cacheEntry, bool) {
	c.expire(now)
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if e.tenant != tenant || e.checked.IsZero() || now.Sub(e.checked) >= within {
		return nil, false
	}
	return e, true
}

// refreshLocked claims the entry's confirmation ahead of time once the
// last quarter of its window has begun.
func (c *dekCache) refreshLocked(e *cacheEntry, now time.Time, within time.Duration) bool {
	if e.refreshing || now.Sub(e.checked) < within-within/4 {
		return false
	}
	e.refreshing = true
	return true
}

// refreshed ends a confirmation ahead of time that did not confirm.
func (c *dekCache) refreshed(id, tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		if e := el.Value.(*cacheEntry); e.tenant == tenant {
			e.refreshing = false
		}
	}
}

// confirm records that the database confirmed the tenant's entry id by a
// read that began at readAt. The start, not the end: a seal committed
// during the read must not count as confirmed after it.
func (c *dekCache) confirm(id, tenant string, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		if e := el.Value.(*cacheEntry); e.tenant == tenant {
			e.refreshing = false
			if readAt.After(e.checked) {
				e.checked = readAt
			}
		}
	}
}

// use finds the tenant's entry id and counts one use; the caller calls
// spent once it has taken what it needs from the entry.
func (c *dekCache) use(id, tenant string, now time.Time) (*cacheEntry, bool) {
	c.expire(now)
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if e.tenant != tenant {
		return nil, false
	}
	e.uses++
	return e, true
}

// spent removes (and zeroes) e once it has been used up.
func (c *dekCache) spent(e *cacheEntry) {
	if c.maxUses > 0 && e.uses >= c.maxUses {
		c.remove(c.byID[e.id])
	}
}

// key returns a copy of the tenant's DEK id for re-wrapping, counting one
// use; the caller zeroes it.
func (c *dekCache) key(id, tenant string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.use(id, tenant, now)
	if !ok {
		return nil, false
	}
	defer c.spent(e)
	return append([]byte(nil), e.key...), true
}

// put caches a copy of key and returns its AEAD; the caller keeps (and
// zeroes) its own key. A key over the byte budget is not cached, but its
// AEAD is still returned.
func (c *dekCache) put(id, tenant string, key []byte, now time.Time) (cipher.AEAD, error) {
	aead, err := newAEAD(key)
	if err != nil || c.maxBytes > 0 && CacheEntrySize > c.maxBytes {
		return aead, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.remove(el)
	}
	e := &cacheEntry{id: id, tenant: tenant, key: append([]byte(nil), key...), aead: aead, loaded: now}
	c.byID[id] = c.order.PushBack(e)
	c.bytes += CacheEntrySize
	for c.maxBytes > 0 && c.bytes > c.maxBytes {
		c.remove(c.order.Front())
	}
	return aead, nil
}

// expire drops entries loaded more than ttl ago; they are at the front.
func (c *dekCache) expire(now time.Time) {
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		if now.Sub(el.Value.(*cacheEntry).loaded) < c.ttl {
			return
		}
		c.remove(el)
	}
}

func (c *dekCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	clear(e.key)
	e.aead = nil
	c.bytes -= CacheEntrySize
	delete(c.byID, e.id)
	c.order.Remove(el)
}

// drop zeroes and drops the tenant's DEK id.
func (c *dekCache) drop(id, tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok && el.Value.(*cacheEntry).tenant == tenant {
		c.remove(el)
	}
}

// wipeTenant zeroes and drops every DEK of tenant.
func (c *dekCache) wipeTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).tenant == tenant {
			c.remove(el)
		}
		el = next
	}
}

// wipe zeroes and drops everything.
func (c *dekCache) wipe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		c.remove(el)
	}
}

// len reports the number of cached DEKs.
func (c *dekCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}
