// Package keyvault is an in-memory Azure Key Vault emulator for the keys
// data plane. It serves the REST API over HTTPS exactly as the unchanged
// azkeys client speaks it (api-version 2025-07-01, also 7.4, 7.5 and 7.6),
// so that cmkd's Key Vault code, its tests and `cmkd dev` run against the
// real SDK without an Azure subscription.
//
// What it does for real: the bearer challenge, key creation and import
// (RSA, EC on P-256, P-256K, P-384 and P-521, oct-HSM), versions, update,
// rotation with a rotation policy, soft delete, recover and purge, paging
// with nextLink, backup and restore, random bytes, and genuine
// cryptography: wrapKey, unwrapKey, encrypt and decrypt (RSA-OAEP,
// RSA-OAEP-256, RSA1_5, A128KW/A192KW/A256KW, AES-GCM, AES-CBC and
// AES-CBCPAD), sign and verify (RS*, PS*, ES*, ES256K) over a digest, with
// signatures any standard verifier accepts (EC ones as r||s, PS* salted
// with the hash length). Error bodies and messages follow recordings of
// the real service, and raw bodies quoted in public issues where no
// recording exists; testdata/wire holds the exchanges the tests replay.
//
// Soft delete follows the vault's setting, as Key Vault models it:
// Config.PurgeProtection and Config.RetentionDays (7 to 90 days; by
// default 90 with purge protection, 7 without) decide each key's
// recoveryLevel ("Recoverable" for 90 days, "CustomizedRecoverable" for
// fewer, with "+Purgeable" unless purge protection is on), its
// recoverableDays and a deleted key's scheduledPurgeDate. Under purge
// protection a purge answers 403 Forbidden until the retention has passed.
// Server.SetSoftDelete and /_emulator/softdelete change the setting at run
// time (a StateFile keeps it), which Key Vault itself never allows once
// purge protection is on.
//
// Managed HSM mode (Config.ManagedHSM) answers as an Azure Managed HSM,
// as azkeys' recorded MHSM tests show one: the 401 challenge names the
// resource https://managedhsm.azure.net and has an empty body (azkeys,
// with its resource check on, accepts it for a *.managedhsm.azure.net
// URL); every key lives in the HSM, so a create or import of RSA, EC or
// oct answers RSA-HSM, EC-HSM or oct-HSM; attributes carry no
// hsmPlatform and operation results name their "alg". oct-HSM keys of 128,
// 192 and 256 bits wrap with A128KW, A192KW and A256KW, and POST /rng
// answers random bytes (GetRandomBytes). Soft delete is always on, with
// purge protection as configured above.
//
// Backup blobs are sealed (AES-256-GCM) under a backup key that every
// emulator of the process shares, as vaults of one subscription and
// geography do, and that a StateFile keeps: a blob restores into any
// emulator of the process, and into a later one started from the same
// state file. Restore keeps names, version ids, attributes, tags and the
// rotation policy; it is refused (409 Conflict) while the name is live or
// soft-deleted.
//
// What it adds for testing: revoking access (every request answers 403
// ForbiddenByRbac), throttling (429), injected latency, 5xx answers and
// dropped connections, per-operation call counters, and the lifecycle
// events Key Vault publishes to Event Grid (new version, near expiry,
// expired), delivered to a Sink function. All of it is reachable from Go
// and over HTTP under /_emulator/.
//
// Differences from the real service that callers should know:
//   - deletion, recovery and purge take effect immediately; the real
//     service needs seconds before a deleted key is visible under
//     /deletedkeys, and a recovered version under /keys;
//   - rotation policies are stored and expiryTime is applied by rotate, but
//     nothing rotates on a schedule;
//   - no key is exportable: a create or import asking for secure key
//     release answers 400, and release answers 400 as for a key without a
//     release policy, since an emulator cannot judge attestation tokens;
//   - HS256/384/512 (HMAC on Managed HSM keys) and key attestation answer
//     400;
//   - an emulated vault takes the key types and operations of a vault, a
//     Premium vault and a Managed HSM alike (oct keys, AES-GCM and CBC,
//     random bytes are Managed HSM's), and answers as a vault (hsmPlatform
//     in attributes, no "alg" in operation results) unless
//     Config.ManagedHSM is set;
//   - Managed HSM mode has no security domain, roles or HMAC keys;
//   - without Config.StateFile the vault lives in memory and is lost on
//     Close.
//
// Persistence, for `cmkd dev`: with Config.StateFile set, the whole vault
// (keys with their private material, versions, attributes, tags, deleted
// keys, rotation policies, the revoked flag, the soft-delete setting made
// at run time, the backup key and which
// expiry events were sent) is loaded at Start and rewritten atomically
// (temporary file, fsync, rename) after every change, so it survives
// kill -9. The file is written 0600 but is not encrypted: it is for
// development only and must never hold real key material. A file Start
// cannot load fails Start with ErrBadStateFile; deleting it starts an
// empty vault. Files of format 1, written before backups and P-256K keys,
// still load. With Config.CAFile
// set, the CA and its key (CAFile+".key", 0600) are reused across restarts,
// so that, restarted on the same Addr, the emulator serves the same key ids
// to clients that still trust the same CA.
package keyvault
