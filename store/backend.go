package store

import (
	"context"
	"time"

	"github.com/cmkd-io/cmkd"
)

// Backend is what a database must do for the Store. It knows nothing about
// encryption: it stores wrapped DEKs and opaque record blobs. Every method
// that reads or writes a tenant's DEKs or records checks the tenant's
// persisted state in the same query or transaction and fails with a
// *SealedError when it is sealed, so that a seal written by any process
// sharing the database takes effect at once everywhere.
//
// Times are passed in by the caller so that every replica measures leases and
// claims with the clock the Store was configured with.
type Backend interface {
	// AddTenant inserts t; ErrExists if its id is taken.
	AddTenant(ctx context.Context, t Tenant) error
	// GetTenant reads a tenant whatever its state.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants lists tenants by id, all of them when key is zero, else
	// those that use key: as customer key, platform key, or the key a
	// change moves from.
	ListTenants(ctx context.Context, key cmkd.KeyID) ([]Tenant, error)
	// RemoveTenant deletes a tenant with its DEKs; without force it fails
	// with ErrNotEmpty while records exist.
	RemoveTenant(ctx context.Context, id string, force bool) error
	// DestroyTenant deletes the tenant's DEKs (every layer), records and
	// the tenant itself, whatever its state, and appends ev to the outbox,
	// in one transaction: crypto-shredding. ErrUnknownTenant (an
	// ErrNotFound) if there is no such tenant.
	DestroyTenant(ctx context.Context, id string, ev cmkd.StatusEvent) error
	// SetTenantState moves a tenant to state (StateSealed with reason and
	// since, or StateActive) and appends ev to the outbox, in one
	// transaction. It changes nothing and reports false when the tenant is
	// already in that state.
	SetTenantState(ctx context.Context, id, state, reason string, since time.Time, ev cmkd.StatusEvent) (bool, error)
	// SealTenants seals every tenant an event of evs names (ev.Tenant) with
	// reason and since, appending the events of those it changed to the
	// outbox, all in one transaction; it returns the tenants it changed.
	// Tenants already sealed, or gone, are left alone.
	SealTenants(ctx context.Context, reason string, since time.Time, evs []cmkd.StatusEvent) ([]string, error)

	// InsertDEK stores a new DEK, given as its layers (one DEK value per
	// layer, the same ID), and makes it its tenant's active DEK, if the
	// tenant is active and its layers are the tenant's (Tenant.Layers):
	// ErrCASConflict if the tenant's keys changed meanwhile.
	InsertDEK(ctx context.Context, layers []DEK) error
	// TenantDEKs returns the layers of up to limit of the tenant's DEKs
	// whose id sorts after after, ordered by DEK id and layer, whatever
	// the tenant's state: unseal needs one to unwrap, a key change all.
	TenantDEKs(ctx context.Context, tenant, after string, limit int) ([]DEK, error)
	// ActiveDEK returns the layers of the tenant's active DEK, ErrNotFound
	// if none.
	ActiveDEK(ctx context.Context, tenant string) ([]DEK, error)
	// GetDEK returns the layers of one of the tenant's DEKs.
	GetDEK(ctx context.Context, tenant, id string) ([]DEK, error)
	// ListDEKsNotAt lists, ordered by id and after the id after, at most
	// limit DEK layers under key whose current wrapping is not by version.
	// A DEK has at most one layer under a key.
	// It does not check seal state: rewrap decides that from Key Vault.
	ListDEKsNotAt(ctx context.Context, key cmkd.KeyID, version, after string, limit int) ([]DEK, error)
	// DEKsAt returns at most limit DEKs under key wrapped by version,
	// whatever their tenant's state.
	DEKsAt(ctx context.Context, key cmkd.KeyID, version string, limit int) ([]DEK, error)
	// CompareAndSwapWrapping replaces the DEK's current wrapping with w,
	// keeping the replaced one as previous, only if the current KID is still
	// expect; ErrCASConflict otherwise.
	CompareAndSwapWrapping(ctx context.Context, id string, expect cmkd.KeyID, w cmkd.Wrapped) error
	// RollbackWrapping makes the previous wrapping current again, only if
	// the current KID is still expect.
	RollbackWrapping(ctx context.Context, id string, expect cmkd.KeyID) error
	// QuarantineDEK sets the DEK aside as one Key Vault cannot unwrap, with
	// reason, and appends ev to the outbox, in one transaction. A
	// quarantined DEK is kept but left out of ListDEKsNotAt, DEKsAt,
	// VersionCounts and CompleteRewrap's check. Setting one aside twice
	// writes ev once.
	QuarantineDEK(ctx context.Context, id, reason string, ev cmkd.StatusEvent) error
	// VersionCounts counts the DEKs under key by wrapping version.
	VersionCounts(ctx context.Context, key cmkd.KeyID) (map[string]int, error)
	// CompleteRewrap records version as the key version of every tenant of
	// key (in the layer key serves) and appends evs to the outbox, in one
	// transaction, only if no DEK under key is wrapped by another version
	// (ErrRewrapIncomplete).
	CompleteRewrap(ctx context.Context, key cmkd.KeyID, version string, evs []cmkd.StatusEvent) error

	// ChangeKey begins a change of the tenant's customer key from from to
	// to (either zero: the platform layer alone) and appends ev, in one
	// transaction: the tenant's Key becomes to, its KeyVersion empty, and
	// Change records from (fromVersion its last version) and since. It
	// fails with ErrCASConflict unless the tenant's key is still from,
	// and with ErrChangeInProgress while another change is under way.
	ChangeKey(ctx context.Context, tenant string, from cmkd.KeyID, fromVersion string, to cmkd.KeyID, since time.Time, ev cmkd.StatusEvent) error
	// ReplaceLayers replaces every layer of DEK id by layers, only if the
	// DEK's layers are still wrapped by exactly expect (ErrCASConflict
	// otherwise): a key change's compare-and-swap.
	ReplaceLayers(ctx context.Context, id string, expect []cmkd.KeyID, layers []DEK) error
	// CompleteKeyChange ends the tenant's key change to key and appends
	// evs, in one transaction, only if the change is still to key and every
	// DEK of the tenant that is not set aside has exactly the tenant's
	// layers (ErrRewrapIncomplete). It reports false, and writes nothing,
	// when no change was under way.
	CompleteKeyChange(ctx context.Context, tenant string, key cmkd.KeyID, evs []cmkd.StatusEvent) (bool, error)

	// GetRecord returns a record's blob, which the caller owns: it is
	// decrypted in place.
	GetRecord(ctx context.Context, tenant, key string) ([]byte, error)
	// PutRecord writes a record's blob, encrypted by dekID, if dekID is
	// the tenant's and the tenant is active.
	PutRecord(ctx context.Context, tenant, key, dekID string, blob []byte) error
	// AddDEKUses adds n to the DEK's count of encryptions and returns the
	// new count. Stores count uses in memory and write them in batches:
	// the count guards a limit (DEKMaxEncryptions) far below where nonces
	// could collide, so a batch lost to a crash does not matter, and one
	// write fewer per Put does.
	AddDEKUses(ctx context.Context, id string, n int64) (int64, error)
	// DeleteRecord deletes a record; ErrNotFound if it did not exist.
	DeleteRecord(ctx context.Context, tenant, key string) error
	// ListRecords lists, in order, at most limit record keys after after.
	ListRecords(ctx context.Context, tenant, after string, limit int) ([]string, error)

	// Keys lists, ordered by key, every key some tenant uses (as customer
	// key, platform key, or the key a change moves from), with its tenants
	// counted by state.
	Keys(ctx context.Context) ([]KeyUse, error)
	// PutKeyStatus records st, replacing what was recorded of st.Key.
	PutKeyStatus(ctx context.Context, st KeyStatus) error
	// KeyStatuses lists, ordered by key, what was recorded of every key.
	KeyStatuses(ctx context.Context) ([]KeyStatus, error)

	// AppendOutbox writes events that go with no state change.
	AppendOutbox(ctx context.Context, evs []cmkd.StatusEvent) error
	// ClaimOutbox claims, in write order, up to limit unsent entries that
	// nobody holds a claim on at now, for the duration claim.
	ClaimOutbox(ctx context.Context, holder string, limit int, now time.Time, claim time.Duration) ([]OutboxEntry, error)
	// MarkSent marks entries sent so they are never claimed again.
	MarkSent(ctx context.Context, ids []string) error
	// ClaimOutboxFor is ClaimOutbox for a sink other than NATSSink, whose
	// delivery state is kept apart from the outbox's columns; the first
	// claim of a sink registers it, and only entries written after that
	// are its to claim. With limit 0 it only registers the sink.
	ClaimOutboxFor(ctx context.Context, sink, holder string, limit int, now time.Time, claim time.Duration) ([]OutboxEntry, error)
	// MarkSentFor marks entries, by event ID, done for a sink other than
	// NATSSink at now: sent, or given up for reason when it is not empty.
	MarkSentFor(ctx context.Context, sink string, ids []string, now time.Time, reason string) error
	// OutboxPending counts the sink's entries not yet done (NATSSink: the
	// outbox's own unsent entries).
	OutboxPending(ctx context.Context, sink string) (int64, error)

	// AcquireLease takes the named lease for holder until now+ttl if it is
	// free, expired, or already the holder's (then it is renewed, token
	// unchanged). A new acquisition gets a larger token than any before.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)
	// RenewLease extends l to now+ttl; ErrLeaseLost if l's token is no
	// longer the lease's or it has expired.
	RenewLease(ctx context.Context, l Lease, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease frees l, if it is still held with l's token, and
	// forgets it; a later acquisition still gets a larger token.
	ReleaseLease(ctx context.Context, l Lease) error
	// CheckLease fails with ErrLeaseLost unless l is held, unexpired at now,
	// with l's token.
	CheckLease(ctx context.Context, l Lease, now time.Time) error
	// Leases lists the leases held or left by a holder that did not
	// release them; released ones are gone.
	Leases(ctx context.Context) ([]Lease, error)

	Close() error
}

// KEK wraps and unwraps DEKs with a Key Vault key; *kek.Client satisfies it.
type KEK interface {
	// Wrap wraps dek with key: versionless means its current version.
	Wrap(ctx context.Context, key cmkd.KeyID, dek []byte) (cmkd.Wrapped, error)
	// Unwrap unwraps w with the key version named by w.KID.
	Unwrap(ctx context.Context, w cmkd.Wrapped) ([]byte, error)
}
