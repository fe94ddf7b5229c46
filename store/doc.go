// Package store is cmkd's envelope-encrypted store: tenants, their
// data-encryption keys (DEKs) wrapped by a customer-managed key in Key Vault,
// the records those DEKs encrypt, each tenant's seal state, the status-event
// outbox and the per-key leases that keep one writer per key.
//
// The domain logic here is the same for every database: record encryption
// (AES-256-GCM, additional data binding tenant, record key and DEK), the key
// check value verified on every unwrap, DEK rotation, the in-memory DEK
// cache and sealing. A database is plugged in through the narrow Backend
// interface (store/sqlite, store/postgres); store/storetest is the
// conformance suite every backend passes.
//
// Plaintext DEKs exist only in memory, in the cache, and are zeroed when they
// leave it. They are never logged, persisted or put into an error.
package store
