package keyvault

import (
	"maps"
	"slices"
)

// attributes is a key version's attributes as the service writes them.
type attributes struct {
	Enabled         bool    `json:"enabled"`
	NBF             *int64  `json:"nbf,omitempty"`
	Exp             *int64  `json:"exp,omitempty"`
	Created         int64   `json:"created"`
	Updated         int64   `json:"updated"`
	RecoveryLevel   string  `json:"recoveryLevel"`
	RecoverableDays int     `json:"recoverableDays"`
	Exportable      bool    `json:"exportable"`
	HSMPlatform     *string `json:"hsmPlatform,omitempty"`
}

// keyBundle is KeyBundle, and DeletedKeyBundle when the first fields are set.
type keyBundle struct {
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	Key                jwk               `json:"key"`
	Attributes         attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// keyItem is one entry of a list page (KeyItem / DeletedKeyItem).
type keyItem struct {
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	Kid                string            `json:"kid"`
	Attributes         attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
}

type listPage struct {
	Value    []keyItem `json:"value"`
	NextLink *string   `json:"nextLink"`
}

// view renders stored state for one request: kids carry the emulator's
// own URL, and the api-version decides which attributes exist.
type view struct {
	base string
	api  string
	sd   softDelete
	hsm  bool // a Managed HSM: no hsmPlatform, "alg" in operation results
}

func (vw view) keyURL(k *key) string { return vw.base + "/keys/" + k.name }

func (vw view) kid(k *key, v *version) string { return vw.keyURL(k) + "/" + v.id }

func (vw view) attrs(v *version) attributes {
	a := attributes{
		Enabled: v.enabled, NBF: clonePtr(v.nbf), Exp: clonePtr(v.exp), Created: v.created, Updated: v.updated,
		RecoveryLevel: vw.sd.recoveryLevel(), RecoverableDays: vw.sd.days(),
	}
	if vw.api != "7.4" && !vw.hsm {
		p := "0"
		if isHSM(v.m.kty) {
			p = "2"
		}
		a.HSMPlatform = &p
	}
	return a
}

func (vw view) bundle(k *key, v *version) keyBundle {
	return keyBundle{Key: v.m.public(vw.kid(k, v), slices.Clone(v.ops)), Attributes: vw.attrs(v), Tags: maps.Clone(v.tags)}
}

func (vw view) deletedBundle(k *key) keyBundle {
	b := vw.bundle(k, k.latest)
	vw.markDeleted(k, &b.RecoveryID, &b.DeletedDate, &b.ScheduledPurgeDate)
	return b
}

func (vw view) markDeleted(k *key, id *string, del, purge **int64) {
	d, p := k.deletedDate, k.purgeDate
	*id, *del, *purge = vw.base+"/deletedkeys/"+k.name, &d, &p
}

func (vw view) item(k *key) keyItem {
	return keyItem{Kid: vw.keyURL(k), Attributes: vw.attrs(k.latest), Tags: maps.Clone(k.latest.tags)}
}

func (vw view) versionItem(k *key, v *version) keyItem {
	return keyItem{Kid: vw.kid(k, v), Attributes: vw.attrs(v), Tags: maps.Clone(v.tags)}
}

func (vw view) deletedItem(k *key) keyItem {
	it := vw.item(k)
	vw.markDeleted(k, &it.RecoveryID, &it.DeletedDate, &it.ScheduledPurgeDate)
	return it
}

// clonePtr copies a pointed-to value, so that responses rendered under the
// vault lock share nothing with state that later requests change.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
