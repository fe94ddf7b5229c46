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
//
// Answers arrive in any order: a probe sent before a key was disabled can
// land after one sent afterwards. So the cache orders by when each probe
// was issued, not when it landed: per version, and for which version is
// latest, the answer of the later issue wins; and a drop (the key refused
// or invalidated) wins over every probe issued before it.
type probeCache struct {
	mu       sync.Mutex
	versions map[string]*probeRecord  // by versioned key id
	latest   map[string]latestVersion // by versionless key URL
	// dropped is when each key was last dropped, by versionless key URL:
	// answers to probes issued until then are stale on arrival. One time
	// per key this process has dropped, so it stays small.
	dropped map[string]time.Time
}

// latestVersion is which version a versionless probe found to be latest.
type latestVersion struct {
	version string
	issued  time.Time
}

func newProbeCache() probeCache {
	return probeCache{
		versions: map[string]*probeRecord{},
		latest:   map[string]latestVersion{},
		dropped:  map[string]time.Time{},
	}
}

// put stores r; asLatest when it answered a versionless probe. What is
// cached already from a later-issued probe is kept, and r is ignored when
// the key was dropped after r was issued. The latest version is looked up
// among the versions, so a versioned probe of it refreshes the latest too.
func (p *probeCache) put(r *probeRecord, asLatest bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := r.state.Key
	if d, ok := p.dropped[k.URL()]; ok && !r.issued.After(d) {
		return
	}
	if old := p.versions[k.String()]; old == nil || !r.issued.Before(old.issued) {
		p.versions[k.String()] = r
	}
	if l, ok := p.latest[k.URL()]; asLatest && (!ok || !r.issued.Before(l.issued)) {
		p.latest[k.URL()] = latestVersion{version: k.Version, issued: r.issued}
	}
}

// get returns the record for id if it is no older than maxAge.
func (p *probeCache) get(id cmkd.KeyID, maxAge time.Duration, now time.Time) *probeRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id.Version == "" {
		l, ok := p.latest[id.URL()]
		if !ok {
			return nil
		}
		id = id.At(l.version)
	}
	r := p.versions[id.String()]
	if r == nil || now.Sub(r.state.ProbedAt) > maxAge {
		return nil
	}
	return r
}

// drop forgets every version of the key and which one was latest, and
// makes answers to probes issued until at stale.
func (p *probeCache) drop(id cmkd.KeyID, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.dropped[id.URL()]; !ok || at.After(d) {
		p.dropped[id.URL()] = at
	}
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
