package keyvault

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
)

// version is one key version: material plus its own attributes and tags,
// which Key Vault keeps per version.
type version struct {
	id          string
	seq         uint64 // creation order across the vault
	m           *material
	ops         []string
	enabled     bool
	nbf, exp    *int64
	created     int64
	updated     int64
	tags        map[string]string
	nearSent    bool // KeyNearExpiry emitted for this exp
	expiredSent bool // KeyExpired emitted for this exp
}

// key is a named key with its versions; the latest is the current one.
type key struct {
	name     string
	versions map[string]*version
	latest   *version
	policy   *policy
	// set while soft-deleted
	deletedDate, purgeDate int64
}

// vault holds live and soft-deleted keys. Names are case-insensitive in
// Key Vault, so the maps are keyed by the lower-cased name.
type vault struct {
	mu      sync.Mutex
	keys    map[string]*key
	deleted map[string]*key
	seq     uint64
	// backupKey seals backup blobs. It never changes once the vault is
	// made or loaded, so it is read without mu.
	backupKey []byte
	// softDelete is the setting made at run time; nil: Config's.
	softDelete *softDelete
}

func newVault() *vault {
	return &vault{keys: map[string]*key{}, deleted: map[string]*key{}, backupKey: processBackupKey()}
}

func newVersionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addVersion makes v the latest version of name, creating the key if needed.
// The caller holds mu and has checked the name is not soft-deleted.
func (vt *vault) addVersion(name string, v *version) *key {
	vt.seq++
	v.seq = vt.seq
	k := vt.keys[strings.ToLower(name)]
	if k == nil {
		k = &key{name: name, versions: map[string]*version{}}
		vt.keys[strings.ToLower(name)] = k
	}
	k.versions[v.id] = v
	k.latest = v
	return k
}

// find returns a live key and the named version (latest when ver is empty).
func (vt *vault) find(name, ver string) (*key, *version, error) {
	k := vt.keys[strings.ToLower(name)]
	if k == nil {
		if ver != "" {
			return nil, nil, keyNotFound(name + "/" + ver)
		}
		return nil, nil, keyNotFound(name)
	}
	if ver == "" {
		return k, k.latest, nil
	}
	v := k.versions[strings.ToLower(ver)]
	if v == nil {
		return nil, nil, keyNotFound(name + "/" + ver)
	}
	return k, v, nil
}

func (vt *vault) isDeleted(name string) bool {
	_, ok := vt.deleted[strings.ToLower(name)]
	return ok
}

// sortedVersions lists a key's versions in creation order.
func (k *key) sortedVersions() []*version {
	out := make([]*version, 0, len(k.versions))
	for _, v := range k.versions {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *version) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

func sortedKeys(m map[string]*key) []*key {
	out := make([]*key, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *key) int { return strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name)) })
	return out
}
