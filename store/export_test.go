package store

// CachedKeys returns the cache's own slices (not copies) of tenant's cached
// DEKs, so an outside test can watch them being zeroed.
func CachedKeys(s *Store, tenant string) [][]byte {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	var out [][]byte
	for el := s.cache.order.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*cacheEntry); e.tenant == tenant {
			out = append(out, e.key)
		}
	}
	return out
}

// WaitRefreshes waits for the store's confirmations ahead of time.
func WaitRefreshes(s *Store) { s.refreshes.Wait() }
