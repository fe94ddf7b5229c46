package store

import "time"

// Tenant states.
const (
	StateActive = "active"
	StateSealed = "sealed"
)

// Tenant is one customer: its records are encrypted by DEKs wrapped by the
// key at KeyURL.
type Tenant struct {
	ID string
	// KeyURL is the versionless Key Vault key URL of the tenant's KEK,
	// normalised by ParseKeyURL.
	KeyURL string
	// KeyVersion is the key version the tenant's DEKs are (being) brought to.
	KeyVersion string
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

// DEK is a data-encryption key as stored: wrapped only.
type DEK struct {
	ID     string
	Tenant string
	KeyURL string
	// Current is the wrapping in use; Previous the one it replaced, kept
	// until the next rewrap so that a bad rewrap can be rolled back.
	Current  Wrapped
	Previous *Wrapped
	// KCV is the key check value of the plaintext DEK (see KeyCheckValue).
	KCV       []byte
	Active    bool
	CreatedAt time.Time
	// Uses counts the encryptions made with this DEK.
	Uses int64
}

// Version is the key version that currently wraps the DEK.
func (d DEK) Version() string { return KeyVersion(d.Current.KID) }

// StatusEvent is a status event for the outbox; the relay publishes it as a
// CloudEvents 1.0 document of type "io.cmkd."+Kind on subject
// cmkd.status.<Tenant>.<Kind> with Nats-Msg-Id = ID.
type StatusEvent struct {
	// ID is unique per event; the store assigns one when empty.
	ID     string
	Kind   string
	Tenant string
	Time   time.Time
	// Data is the CloudEvent "data" object (tenant, vault, key, version, ...).
	Data map[string]any
}

// Status event kinds (DESIGN.md).
const (
	KindRewrapStarted   = "rewrap.started"
	KindRewrapCompleted = "rewrap.completed"
	KindRewrapFailed    = "rewrap.failed"
	KindVersionRetired  = "version.retired"
	KindSealed          = "sealed"
	KindUnsealed        = "unsealed"
	KindKeyNearExpiry   = "key.near_expiry"
	KindKeyExpired      = "key.expired"
)

// OutboxEntry is a claimed, not yet sent status event.
type OutboxEntry struct {
	// Seq orders entries in the order they were written.
	Seq   int64
	Event StatusEvent
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
