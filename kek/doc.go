// Package kek is cmkd's only door to Azure Key Vault, where each tenant's
// key-encryption key (KEK) lives.
//
// It probes a key's state and classifies it into an Outcome the handlers
// decide on (usable, disabled, deleted, purged, access denied, ...), wraps
// data-encryption keys (locally with the public key for RSA keys, remotely
// for oct keys) and unwraps them remotely. Every call to a vault passes one
// per-vault adaptive limiter (a token bucket that halves on 429 and creeps up
// while calls succeed, plus a concurrency bound) and one retry loop for
// transient failures; the Azure SDK's own retry policy is switched off so
// that throttling is seen, and answered, in one place.
//
// Key Vault errors are classified into sentinels (ErrDisabled,
// ErrAccessDenied, ...) from the HTTP status, the error code and the body's
// innererror code, never from message text. The *azcore.ResponseError
// behind a classified error stays reachable with errors.As. A vault that
// gave no HTTP answer is only "unavailable" in messages, whatever the
// network said; the cause is logged and reachable with errors.As.
//
// A key URL decides where the client connects, and tenants' key URLs may
// come from customers, so the client calls only vaults its VaultPolicy
// allows (Key Vault and Managed HSM DNS suffixes by default) and refuses
// any other with ErrVaultNotAllowed before any network I/O.
//
// Client.Onboard makes the checks Azure services make before they accept a
// customer-managed key: access, key type and size, key_ops, enabled and
// validity, purge protection, and a live wrap and unwrap. A refusal is an
// *OnboardError with a stable Code (the Code… constants), a Problem and a
// Fix that names the az command to run.
//
// Managed HSM throttles per second per HSM, a vault per 10 s per vault:
// a Managed HSM (a *.managedhsm.azure.net host, or one listed in
// Config.ManagedHSMs) has LimiterConfig.HSMLimit as its limit, and its
// limiter starts from that instead of from a vault's.
//
// A local wrap needs no call to Key Vault, but public key material alone says
// nothing about revocation: a key may be wrapped locally only while a probe
// of that version, no older than Config.ProbeFreshness, shows it enabled,
// inside its validity window and allowed both wrapKey and unwrapKey.
package kek
