package keyvault

import (
	"crypto/rand"
	"encoding/json"
)

// maxRandomBytes is GetRandomBytesRequest.count's maximum in the REST
// specification (7.4 to 2025-07-01); its minimum is 1.
const maxRandomBytes = 128

type randomReq struct {
	Count *int `json:"count"`
}

// randomResp is RandomBytes (recorded in azkeys' TestGetRandomBytes).
type randomResp struct {
	Value string `json:"value"`
}

func (s *Server) getRandomBytes(c *call) (any, error) {
	var req randomReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Count == nil {
		return nil, badParameter("Property count is required.")
	}
	if n := *req.Count; n < 1 || n > maxRandomBytes {
		return nil, badParameter("The value of parameter count (%d) is invalid. It must be between 1 and %d.", n, maxRandomBytes)
	}
	b := make([]byte, *req.Count)
	_, _ = rand.Read(b)
	return randomResp{Value: b64(b)}, nil
}

type releaseReq struct {
	Target *string `json:"target"`
	Nonce  string  `json:"nonce"`
	Enc    string  `json:"enc"`
}

// release answers as Key Vault does for a key that is not exportable:
// the emulator makes no exportable keys (see checkRelease), so no key
// here has a release policy to satisfy.
func (s *Server) release(c *call) (any, error) {
	var req releaseReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Target == nil || *req.Target == "" {
		return nil, badParameter("Property target is required.")
	}
	s.vault.mu.Lock()
	k, v, err := s.vault.find(c.name, c.ver)
	var kid string
	if err == nil {
		kid = c.vw.kid(k, v)
	}
	s.vault.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return nil, badParameter("Key %s is not exportable and has no release policy: only an exportable key with a release policy can be released.", kid)
}

// checkRelease refuses what secure key release needs, with Key Vault's
// messages for an exportable key without a release policy (AKV.SKR.1004)
// and a release policy on a key that is not exportable (AKV.SKR.1005).
// Both together would need attestation, which the emulator cannot judge.
func checkRelease(a *attrsIn, policy json.RawMessage) error {
	exportable := a != nil && a.Exportable != nil && *a.Exportable
	hasPolicy := len(policy) > 0 && string(policy) != "null"
	switch {
	case exportable && !hasPolicy:
		return badParameter("AKV.SKR.1004: Exportable keys must have release policy.")
	case hasPolicy && !exportable:
		return badParameter("AKV.SKR.1005: Non-exportable keys must not have release policy.")
	case exportable:
		return badParameter("Exportable keys (secure key release) are not supported by this emulator.")
	}
	return nil
}
