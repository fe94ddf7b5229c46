package kek

import (
	"crypto/rsa"
	"strings"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
)

// probeRecord is what one successful GET of a key version taught us.
type probeRecord struct {
	state KeyState
	pub   *rsa.PublicKey // RSA keys only
	// issued is when the GET that answered was sent: the vault read the
	// key's state at some instant after it.
	issued time.Time

	mu      sync.Mutex
	wrapAlg string // oct keys: the AES-KW algorithm that worked
}

func (r *probeRecord) alg() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wrapAlg
}

func (r *probeRecord) setAlg(a string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wrapAlg = a
}

// probeCache keeps the last probe of each version, and which version was
// latest, so that local wraps need no call to Key Vault.
type probeCache struct {
	mu       sync.Mutex
	versions map[string]*probeRecord // by versioned key id
	latest   map[string]*probeRecord // by versionless key URL
}

func newProbeCache() probeCache {
	return probeCache{versions: map[string]*probeRecord{}, latest: map[string]*probeRecord{}}
}

// put stores r; asLatest when it answered a versionless probe. A versioned
// probe of the version currently known as latest refreshes that too.
func (p *probeCache) put(r *probeRecord, asLatest bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := r.state.Key
	p.versions[k.String()] = r
	if l := p.latest[k.URL()]; asLatest || l != nil && l.state.Key.Version == k.Version {
		p.latest[k.URL()] = r
	}
}

// get returns the record for id if it is no older than maxAge.
func (p *probeCache) get(id cmkd.KeyID, maxAge time.Duration, now time.Time) *probeRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.versions[id.String()]
	if id.Version == "" {
		r = p.latest[id.URL()]
	}
	if r == nil || now.Sub(r.state.ProbedAt) > maxAge {
		return nil
	}
	return r
}

// drop forgets every version of the key and which one was latest, at at.
func (p *probeCache) drop(id cmkd.KeyID, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.latest, id.URL())
	prefix := id.URL() + "/"
	for k := range p.versions {
		if strings.HasPrefix(k, prefix) {
			delete(p.versions, k)
		}
	}
}

// Invalidate drops cached probe results for every version of a key, so the
// next wrap probes first. Callers do it when they seal.
func (c *Client) Invalidate(id cmkd.KeyID) {
	c.cache.drop(id, time.Now())
}
