package keyvault

import "strings"

// Soft delete, recover and purge act at once; the real service takes
// seconds, which callers must poll for there (see doc.go).

func (s *Server) deleteKey(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	id := strings.ToLower(c.name)
	k := s.vault.keys[id]
	if k == nil {
		return nil, keyNotFound(c.name)
	}
	delete(s.vault.keys, id)
	k.deletedDate = c.now
	k.purgeDate = c.now + int64(c.vw.sd.days())*86400
	s.vault.deleted[id] = k
	return c.vw.deletedBundle(k), nil
}

func (s *Server) getDeletedKey(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k := s.vault.deleted[strings.ToLower(c.name)]
	if k == nil {
		return nil, deletedKeyNotFound(c.name)
	}
	return c.vw.deletedBundle(k), nil
}

// purgeKey answers 204 with no body (a nil result).
func (s *Server) purgeKey(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	id := strings.ToLower(c.name)
	k := s.vault.deleted[id]
	if k == nil {
		return nil, deletedKeyNotFound(c.name)
	}
	// Under purge protection only the retention's end purges a key.
	if c.vw.sd.PurgeProtection && c.now < k.purgeDate {
		return nil, purgeProtected(s.cfg.VaultName)
	}
	delete(s.vault.deleted, id)
	return nil, nil
}

func (s *Server) recoverKey(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	id := strings.ToLower(c.name)
	k := s.vault.deleted[id]
	if k == nil {
		return nil, deletedKeyNotFound(c.name)
	}
	delete(s.vault.deleted, id)
	k.deletedDate, k.purgeDate = 0, 0
	s.vault.keys[id] = k
	return c.vw.bundle(k, k.latest), nil
}
