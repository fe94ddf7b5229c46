// Package keyvault is an in-memory Azure Key Vault emulator for the keys
// data plane. It serves the REST API over HTTPS exactly as the unchanged
// azkeys client speaks it (api-version 2025-07-01, also 7.4, 7.5 and 7.6),
// so that cmkd's Key Vault code, its tests and `cmkd dev` run against the
// real SDK without an Azure subscription.
//
// What it does for real: the bearer challenge, key creation and import
// (RSA, EC, oct-HSM), versions, update, rotation with a rotation policy,
// soft delete, recover and purge, paging with nextLink, and genuine
// cryptography for wrapKey, unwrapKey, encrypt and decrypt (RSA-OAEP,
// RSA-OAEP-256, RSA1_5, A128KW/A192KW/A256KW, AES-GCM). Error bodies and
// messages follow recordings of the real service.
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
//   - sign, verify, backup, restore, release and rng answer 400;
//   - without Config.StateFile the vault lives in memory and is lost on
//     Close.
//
// Persistence, for `cmkd dev`: with Config.StateFile set, the whole vault
// (keys with their private material, versions, attributes, tags, deleted
// keys, rotation policies, the revoked flag and which expiry events were
// sent) is loaded at Start and rewritten atomically (temporary file, fsync,
// rename) after every change, so it survives kill -9. The file is written
// 0600 but is not encrypted: it is for development only and must never hold
// real key material. A file Start cannot load fails Start with
// ErrBadStateFile; deleting it starts an empty vault. With Config.CAFile
// set, the CA and its key (CAFile+".key", 0600) are reused across restarts,
// so that, restarted on the same Addr, the emulator serves the same key ids
// to clients that still trust the same CA.
package keyvault
