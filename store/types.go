package store

import (
	"time"

	"github.com/cmkd-io/cmkd"
)

// Tenant states.
const (
	StateActive = "active"
	StateSealed = "sealed"
)

// Tenant is one customer: its records are encrypted by DEKs, each in one
// layer per key — the platform key's and the customer's own (Key) — so
// that reading needs every one of them (see DEK).
type Tenant struct {
	ID string
	// Key is the customer's key (versionless): the second layer, or the
	// only one when the store has no platform key. Zero for a tenant under
	// the platform layer alone.
	Key cmkd.KeyID
	// KeyVersion is the version of Key the tenant's DEKs are (being)
	// brought to.
	KeyVersion string
	// PlatformKey is the operator's key (versionless) of the platform
	// layer; zero for a tenant added before the store had one.
	PlatformKey cmkd.KeyID
	// PlatformKeyVersion is PlatformKey's version the DEKs are brought to.
	PlatformKeyVersion string
	// Change is the key change under way (`cmkd tenant set-key`), nil when
	// none is: the tenant's DEKs are being moved from Change.From to Key.
	Change     *KeyChange
	State      string
	SealReason string
	SealedAt   time.Time
	CreatedAt  time.Time
}

// Sealed reports whether the tenant is sealed.
func (t Tenant) Sealed() bool { return t.State == StateSealed }

// SealedError returns the error every operation on this sealed tenant fails with.
func (t Tenant) SealedError() *SealedError {
	return &SealedError{Tenant: t.ID, Reason: t.SealReason, Since: t.SealedAt}
}

// Layers of a DEK: one per key it is wrapped under.
const (
	LayerPlatform = "platform"
	LayerCustomer = "customer"
)

// KeyChange is a tenant's change of customer key, under way.
type KeyChange struct {
	// From is the customer key the DEKs are moved from; zero when the
	// tenant had the platform layer alone.
	From cmkd.KeyID
	// FromVersion is the version of From the DEKs were brought to.
	FromVersion string
	// Since is when the change began.
	Since time.Time
}

// Layers lists the tenant's layers and their keys, in the order a DEK's
// layers are stored (customer, then platform).
func (t Tenant) Layers() []TenantLayer {
	var out []TenantLayer
	if !t.Key.IsZero() {
		out = append(out, TenantLayer{LayerCustomer, t.Key, t.KeyVersion})
	}
	if !t.PlatformKey.IsZero() {
		out = append(out, TenantLayer{LayerPlatform, t.PlatformKey, t.PlatformKeyVersion})
	}
	return out
}

// TenantLayer is one of a tenant's layers: the key that wraps it, and the
// version its DEKs are brought to.
type TenantLayer struct {
	Layer   string
	Key     cmkd.KeyID
	Version string
}

// LayerOf names the layer key serves for the tenant: LayerPlatform,
// LayerCustomer (also for the key a change moves from), or "" if key is
// none of the tenant's.
func (t Tenant) LayerOf(key cmkd.KeyID) string {
	key = key.Versionless()
	switch {
	case key.IsZero():
		return ""
	case key == t.PlatformKey:
		return LayerPlatform
	case key == t.Key, t.Change != nil && key == t.Change.From:
		return LayerCustomer
	}
	return ""
}

// VersionOf is the version of key the tenant's DEKs in its layer are
// brought to; "" for a key the tenant does not use, or whose version was
// never recorded (a key a change moves from).
func (t Tenant) VersionOf(key cmkd.KeyID) string {
	switch key = key.Versionless(); {
	case key.IsZero():
		return ""
	case key == t.PlatformKey:
		return t.PlatformKeyVersion
	case key == t.Key:
		return t.KeyVersion
	}
	return ""
}

// DEK is one layer of a data-encryption key as stored: a share of the key,
// wrapped under one Key Vault key. A DEK is the XOR of the shares of its
// layers, so that it can be read only with every layer's key; with one
// layer the share is the DEK itself. The rewrap engine moves layers one by
// one: rotating a key rewraps only the shares under it.
type DEK struct {
	ID     string
	Tenant string
	// Layer is LayerPlatform or LayerCustomer.
	Layer string
	// Key is the KEK the layer is wrapped under, versionless.
	Key cmkd.KeyID
	// Current is the wrapping in use; Previous the one it replaced, kept
	// until the next rewrap so that a bad rewrap can be rolled back.
	Current  cmkd.Wrapped
	Previous *cmkd.Wrapped
	// KCV is the key check value of the layer's share (see
	// KeyCheckValue); FullKCV that of the DEK, the same in every layer.
	KCV, FullKCV []byte
	Active       bool
	CreatedAt    time.Time
	// Uses counts the encryptions made with this DEK.
	Uses int64
}

// Version is the key version that currently wraps the DEK.
func (d DEK) Version() string { return d.Current.KID.Version }

// OutboxEntry is a claimed, not yet sent status event.
type OutboxEntry struct {
	// Seq orders entries in the order they were written.
	Seq   int64
	Event cmkd.StatusEvent
	// Attempts counts claims, this one included.
	Attempts int
}

// Lease is a time-bound claim on a name (one per vault and key). Token is a
// fencing token: it grows with every new acquisition, so a write guarded by
// an older token can be refused.
type Lease struct {
	Name    string
	Holder  string
	Token   int64
	Expires time.Time
}
