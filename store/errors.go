package store

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrSealed is wrapped by every error for an operation on a sealed
	// tenant. errors.As with *SealedError gives the reason and time.
	ErrSealed = errors.New("tenant sealed")
	// ErrNotFound: the tenant, record, DEK or lease does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a tenant with that id already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalidKey: the record key is empty or longer than MaxRecordKeyLen.
	ErrInvalidKey = errors.New("invalid record key")
	// ErrTooLarge: the record value exceeds Config.MaxRecordSize.
	ErrTooLarge = errors.New("record too large")
	// ErrIntegrity: a ciphertext failed authentication (moved to another
	// tenant or key, or corrupted), or an unwrapped DEK failed its key check
	// value. Never retry; investigate.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrNotEmpty: the tenant still has records; remove it with force.
	ErrNotEmpty = errors.New("tenant has records")
	// ErrCASConflict: the DEK's wrapping was no longer the one the caller
	// read; someone else rewrapped it first. Re-read and decide again.
	ErrCASConflict = errors.New("wrapping changed concurrently")
	// ErrNoPrevious: there is no previous wrapping to roll back to.
	ErrNoPrevious = errors.New("no previous wrapping")
	// ErrRewrapIncomplete: DEKs under the key are still wrapped by another
	// version, so the rewrap cannot be marked complete.
	ErrRewrapIncomplete = errors.New("rewrap incomplete")
	// ErrLeaseHeld: another holder has an unexpired lease.
	ErrLeaseHeld = errors.New("lease held by another holder")
	// ErrLeaseLost: the caller's lease expired and was taken, or released;
	// its fencing token is stale and guarded writes must stop.
	ErrLeaseLost = errors.New("lease lost")
	// ErrSchemaTooNew: the database was written by a newer cmkd.
	ErrSchemaTooNew = errors.New("database schema newer than this binary")
	// ErrSchemaBehind: the database schema is older than this binary and
	// the backend was told not to migrate it; run `cmkd migrate` first.
	ErrSchemaBehind = errors.New("database schema older than this binary: run cmkd migrate")
	// ErrNoKey: the tenant would have no key, and so no layer: give it a
	// customer key, or configure the store's platform key.
	ErrNoKey = errors.New("no key")
	// ErrChangeInProgress: the tenant's key is being changed already;
	// the change must complete first.
	ErrChangeInProgress = errors.New("a key change is in progress")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrUnknownTenant: no tenant has that id (never added, removed or
	// destroyed). It also matches ErrNotFound under errors.Is, so callers
	// that only know ErrNotFound keep working; callers that must tell a
	// missing tenant from a missing record test ErrUnknownTenant first.
	ErrUnknownTenant error = unknownTenantError{}
)

// unknownTenantError is ErrUnknownTenant's type: a comparable sentinel
// whose Is also answers for ErrNotFound.
type unknownTenantError struct{}

func (unknownTenantError) Error() string { return "unknown tenant" }

// Is makes errors.Is(ErrUnknownTenant, ErrNotFound) true.
func (unknownTenantError) Is(target error) bool { return target == ErrNotFound }

// UnwrapError is a DEK's current wrapping failing to unwrap (in a rewrap,
// or as a probe's sentinel), as opposed to a new wrapping or a swap
// failing: the caller decides from Err whether the key or only this DEK is
// at fault.
type UnwrapError struct {
	DEK DEK
	Err error
}

func (e *UnwrapError) Error() string { return e.Err.Error() }
func (e *UnwrapError) Unwrap() error { return e.Err }

// SealedError says which tenant is sealed, why and since when. It matches
// ErrSealed under errors.Is.
type SealedError struct {
	Tenant string
	Reason string
	Since  time.Time
}

func (e *SealedError) Error() string {
	return fmt.Sprintf("tenant %s sealed since %s: %s", e.Tenant, e.Since.UTC().Format(time.RFC3339), e.Reason)
}

// Is makes errors.Is(err, ErrSealed) true.
func (e *SealedError) Is(target error) bool { return target == ErrSealed }

// LeaseHeldError is the ErrLeaseHeld of an acquire: who holds the lease and
// until when, so that a caller can come back when it runs out.
type LeaseHeldError struct {
	Lease Lease // the holder's: Name, Holder and Expires
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("lease %s held by %s until %s", e.Lease.Name, e.Lease.Holder, e.Lease.Expires.Format(time.RFC3339))
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }
