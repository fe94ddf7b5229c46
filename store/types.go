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

// Tenant is one customer: its records are encrypted by DEKs wrapped by
// Key.
type Tenant struct {
	ID string
	// Key is the tenant's KEK, versionless.
	Key cmkd.KeyID
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
	// Key is the KEK the DEK is wrapped under, versionless.
	Key cmkd.KeyID
	// Current is the wrapping in use; Previous the one it replaced, kept
	// until the next rewrap so that a bad rewrap can be rolled back.
	Current  cmkd.Wrapped
	Previous *cmkd.Wrapped
	// KCV is the key check value of the plaintext DEK (see KeyCheckValue).
	KCV       []byte
	Active    bool
	CreatedAt time.Time
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
