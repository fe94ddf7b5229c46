package keyvault

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// eventData is the data of Microsoft.KeyVault.Key* events, with the field
// names azsystemevents (KeyVaultKeyNewVersionCreatedEventData) reads.
// NBF and EXP are unix seconds, null when unset.
type eventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF"`
	EXP        *int64 `json:"EXP"`
}

// keyEvent builds an event about one version; the caller holds the vault lock.
func (s *Server) keyEvent(typ string, vw view, k *key, v *version) CloudEvent {
	data, _ := json.Marshal(eventData{
		ID: vw.kid(k, v), VaultName: s.cfg.VaultName, ObjectType: "Key", ObjectName: k.name,
		Version: v.id, NBF: clonePtr(v.nbf), EXP: clonePtr(v.exp),
	})
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return CloudEvent{
		SpecVersion: "1.0",
		ID:          hex.EncodeToString(id),
		Source: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator" +
			"/providers/Microsoft.KeyVault/vaults/" + s.cfg.VaultName,
		Subject:         k.name,
		Type:            typ,
		Time:            s.cfg.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
}

// emit hands events to the sink; never call it with the vault lock held.
func (s *Server) emit(evs []CloudEvent) {
	if s.cfg.Sink == nil {
		return
	}
	for _, ev := range evs {
		s.cfg.Sink(ev)
	}
}

// expiryLoop raises KeyNearExpiry and KeyExpired, once per version and
// exp value, by polling on Config.ExpiryCheck against Config.Now.
func (s *Server) expiryLoop() {
	t := time.NewTicker(s.cfg.ExpiryCheck)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if evs := s.expiryEvents(); len(evs) > 0 {
				s.persist() // remember they were sent, before sending
				s.emit(evs)
			}
		}
	}
}

func (s *Server) expiryEvents() []CloudEvent {
	now := s.cfg.Now()
	vw := view{base: s.url, api: "2025-07-01", sd: s.softDelete(), hsm: s.cfg.ManagedHSM}
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	var out []CloudEvent
	for _, k := range sortedKeys(s.vault.keys) {
		for _, v := range k.sortedVersions() {
			if v.exp == nil || v.expiredSent {
				continue
			}
			exp := time.Unix(*v.exp, 0)
			switch {
			case !now.Before(exp):
				v.expiredSent, v.nearSent = true, true
				out = append(out, s.keyEvent(EventKeyExpired, vw, k, v))
			case !v.nearSent && !now.Before(exp.Add(-s.cfg.NearExpiry)):
				v.nearSent = true
				out = append(out, s.keyEvent(EventKeyNearExpiry, vw, k, v))
			}
		}
	}
	return out
}
