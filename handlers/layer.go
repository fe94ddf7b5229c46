package handlers

import (
	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// A tenant has up to two layers, each under its own key (store.Tenant
// Layers); a key's check acts on the tenants of the layer it serves.

// layerReason is the seal reason for t when key, one of its layers' keys,
// is unusable for reason: the platform layer's reasons say so.
func layerReason(t store.Tenant, key cmkd.KeyID, reason string) string {
	if t.LayerOf(key) == store.LayerPlatform {
		return cmkd.PlatformReason(reason)
	}
	return reason
}

// sealedBy reports whether t's seal is key's to lift: it was sealed for
// the layer key serves. A tenant sealed because its customer key was
// revoked stays sealed while the platform key probes usable, and the
// other way round; a tenant sealed for both opens when the second comes
// back, as the store's unseal unwraps every layer first.
func sealedBy(t store.Tenant, key cmkd.KeyID) bool {
	return (t.LayerOf(key) == store.LayerPlatform) == cmkd.IsPlatformReason(t.SealReason)
}

// movingAway reports whether key is the customer key t's DEKs are being
// moved from: a version of it is no longer recorded for t.
func movingAway(t store.Tenant, key cmkd.KeyID) bool {
	return t.Change != nil && t.Change.From == key.Versionless() && t.Key != key.Versionless()
}
