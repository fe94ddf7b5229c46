package keyvault

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// attrsIn are the settable attributes of a create, import or update.
type attrsIn struct {
	Enabled    *bool  `json:"enabled"`
	NBF        *int64 `json:"nbf"`
	Exp        *int64 `json:"exp"`
	Exportable *bool  `json:"exportable"`
}

type createReq struct {
	createParams
	KeyOps        []string          `json:"key_ops"`
	Attributes    *attrsIn          `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

type importReq struct {
	Key           *jwk              `json:"key"`
	HSM           *bool             `json:"Hsm"`
	Attributes    *attrsIn          `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

type updateReq struct {
	KeyOps        []string          `json:"key_ops"`
	Attributes    *attrsIn          `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

var validOps = map[string]bool{"encrypt": true, "decrypt": true, "sign": true, "verify": true,
	"wrapKey": true, "unwrapKey": true, "import": true, "export": true}

// ecOps are the only key_ops an EC key takes.
var ecOps = []string{"sign", "verify"}

func checkOps(ops []string, kty string) ([]string, error) {
	if ops == nil {
		return defaultOps(kty), nil
	}
	var unsupported []string
	for _, op := range ops {
		if !validOps[op] {
			return nil, badParameter("The value of parameter key_ops (%s) is invalid.", op)
		}
		if family(kty) == "EC" && !slices.Contains(ecOps, op) && !slices.Contains(unsupported, strconv.Quote(op)) {
			unsupported = append(unsupported, strconv.Quote(op))
		}
	}
	if len(unsupported) > 0 {
		return nil, badParameter("Unsupported key operation(s): %s. Supported values are \"sign\", \"verify\".", strings.Join(unsupported, ", "))
	}
	return slices.Clone(ops), nil
}

func newVersion(m *material, ops []string, a *attrsIn, tags map[string]string, now int64) *version {
	v := &version{id: newVersionID(), m: m, ops: ops, enabled: true, created: now, updated: now, tags: maps.Clone(tags)}
	v.apply(a)
	return v
}

// apply sets the attributes present in a; a new exp re-arms the expiry events.
func (v *version) apply(a *attrsIn) {
	if a == nil {
		return
	}
	if a.Enabled != nil {
		v.enabled = *a.Enabled
	}
	if a.NBF != nil {
		v.nbf = clonePtr(a.NBF)
	}
	if a.Exp != nil {
		v.exp = clonePtr(a.Exp)
		v.nearSent, v.expiredSent = false, false
	}
}

func (s *Server) createKey(c *call) (any, error) {
	var req createReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Kty == "" {
		return nil, badParameter("Property kty is required.")
	}
	if s.cfg.ManagedHSM {
		req.Kty = hsmKty(req.Kty)
	}
	if err := checkRelease(req.Attributes, req.ReleasePolicy); err != nil {
		return nil, err
	}
	ops, err := checkOps(req.KeyOps, req.Kty)
	if err != nil {
		return nil, err
	}
	if err := s.precheckName(c.name); err != nil {
		return nil, err
	}
	m, err := generate(req.createParams) // slow for RSA: outside the lock
	if err != nil {
		return nil, err
	}
	return s.addVersion(c, newVersion(m, ops, req.Attributes, req.Tags, c.now), false)
}

func (s *Server) importKey(c *call) (any, error) {
	var req importReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Key == nil {
		return nil, badParameter("Property key is required.")
	}
	if err := checkRelease(req.Attributes, req.ReleasePolicy); err != nil {
		return nil, err
	}
	m, err := importMaterial(*req.Key, s.cfg.ManagedHSM || req.HSM != nil && *req.HSM)
	if err != nil {
		return nil, err
	}
	ops, err := checkOps(req.Key.KeyOps, m.kty)
	if err != nil {
		return nil, err
	}
	return s.addVersion(c, newVersion(m, ops, req.Attributes, req.Tags, c.now), false)
}

// precheckName refuses early, before generating a key, a name in the
// deleted-but-recoverable state; addVersion checks again under the lock.
func (s *Server) precheckName(name string) error {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	if s.vault.isDeleted(name) {
		return deletedConflict(name)
	}
	return nil
}

// addVersion stores v as the newest version. mustExist is for rotate,
// whose key may have been deleted while the new material was generated.
func (s *Server) addVersion(c *call, v *version, mustExist bool) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	if mustExist && s.vault.keys[strings.ToLower(c.name)] == nil {
		return nil, keyNotFound(c.name)
	}
	if s.vault.isDeleted(c.name) {
		return nil, deletedConflict(c.name)
	}
	k := s.vault.addVersion(c.name, v)
	c.events = append(c.events, s.keyEvent(EventKeyNewVersionCreated, c.vw, k, v))
	return c.vw.bundle(k, v), nil
}

func (s *Server) getKey(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k, v, err := s.vault.find(c.name, c.ver)
	if err != nil {
		return nil, err
	}
	return c.vw.bundle(k, v), nil
}

func (s *Server) updateKey(c *call) (any, error) {
	var req updateReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := checkRelease(req.Attributes, req.ReleasePolicy); err != nil {
		return nil, err
	}
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k, v, err := s.vault.find(c.name, c.ver)
	if err != nil {
		return nil, err
	}
	if req.KeyOps != nil {
		ops, err := checkOps(req.KeyOps, v.m.kty)
		if err != nil {
			return nil, err
		}
		v.ops = ops
	}
	v.apply(req.Attributes)
	if req.Tags != nil {
		v.tags = maps.Clone(req.Tags)
	}
	v.updated = c.now
	return c.vw.bundle(k, v), nil
}

// rotateKey makes a new version like the latest one; the rotation
// policy's expiryTime, when set, becomes the new version's exp.
func (s *Server) rotateKey(c *call) (any, error) {
	s.vault.mu.Lock()
	_, latest, err := s.vault.find(c.name, "")
	var expiry string
	if err == nil && s.vault.keys[strings.ToLower(c.name)].policy != nil {
		expiry = s.vault.keys[strings.ToLower(c.name)].policy.Attributes.ExpiryTime
	}
	s.vault.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m, err := latest.m.like()
	if err != nil {
		return nil, err
	}
	v := newVersion(m, slices.Clone(latest.ops), nil, latest.tags, c.now)
	if d, ok := parseISODuration(expiry); ok {
		exp := c.now + int64(d.Seconds())
		v.exp = &exp
	}
	return s.addVersion(c, v, true)
}
