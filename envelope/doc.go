// Package envelope is the Go API applications use to encrypt their
// tenants' data under each tenant's own key (customer-managed, in Azure Key
// Vault or Managed HSM) through cmkd. An application opens cmkd's store
// from the same config file `cmkd run` uses, in its own process: no cmkd
// server sits in the data path, and Key Vault is called only to unwrap a
// tenant's data key, not per operation.
//
// # Using cmkd from your service
//
// Run `cmkd run` with a config file (it watches the tenants' keys, rotates
// and seals), add tenants with `cmkd tenant add`, and open the same config
// from the service:
//
//	env, err := envelope.OpenFile(ctx, "/etc/cmkd/cmkd.yaml")
//	if err != nil {
//		return err
//	}
//	defer env.Close()
//
// The service needs the store (the SQLite file on the same machine, or the
// PostgreSQL database) and Key Vault permission to wrap and unwrap with the
// tenants' keys, like cmkd itself. Environment variables override the file
// as for cmkd (CMKD_STORE_DSN, …); envelope.Open takes a config.Config
// built in code instead.
//
// There are two ways to use it; a service may use both.
//
// Envelope: the service keeps the ciphertext. Encrypt returns a
// self-describing ciphertext to store anywhere (a database column, an
// object store, a message); Decrypt opens it. It is never rewritten: when a
// tenant's key rotates or changes, cmkd rewraps the tenant's data keys, and
// ciphertexts made before stay readable. The additional data (aad) binds a
// ciphertext to where it belongs — the same aad must be given to Decrypt —
// so that a ciphertext copied to another row does not decrypt:
//
//	aad := []byte("invoices/" + invoiceID + "/iban")
//	ct, err := env.Encrypt(ctx, tenant, []byte(iban), aad)
//	// store ct with the invoice; later:
//	iban, err := env.Decrypt(ctx, tenant, ct, aad)
//
// Records: cmkd keeps the data. Put encrypts a value and stores it in
// cmkd's database under a key of the service's choosing; Get, Delete and
// List (paged, in key order) read it back:
//
//	err := env.Put(ctx, tenant, "profile/42", profileJSON)
//	v, err := env.Get(ctx, tenant, "profile/42")
//	keys, err := env.List(ctx, tenant, "", 100) // then after keys[len(keys)-1]
//
// # Errors to branch on
//
// Test errors with errors.Is; each is documented at its variable.
//
//	switch v, err := env.Get(ctx, tenant, key); {
//	case errors.Is(err, envelope.ErrSealed):
//		// The tenant's key is disabled, deleted or its access revoked
//		// (errors.As with *envelope.SealedError gives why and since
//		// when): answer "unavailable for this tenant" (e.g. HTTP 503),
//		// not a server error. cmkd unseals it when the key works again.
//	case errors.Is(err, envelope.ErrUnknownTenant):
//		// No such tenant (test it before ErrNotFound, which it also matches).
//	case errors.Is(err, envelope.ErrNotFound):
//		// No record under key.
//	case errors.Is(err, envelope.ErrIntegrity):
//		// Tampered with, another tenant's, or the wrong aad: never
//		// retry; investigate.
//	case err != nil:
//		// Infrastructure: the database or Key Vault; retry later.
//	default:
//		use(v)
//	}
//
// # Sealed tenants
//
// Every call checks the tenant's state in the store before it uses a data
// key, so when cmkd seals a tenant (its key was disabled, deleted or its
// access revoked, or Key Vault stayed unreachable past the grace period)
// this Client's next call for the tenant fails with ErrSealed, although it
// runs in another process, and the tenant's data keys it held in memory are
// dropped. Data keys are kept in memory for at most store.cache_ttl
// (default 5 minutes) in any case. Other tenants are unaffected.
//
// # Concurrency
//
// A Client is safe for concurrent use by any number of goroutines; open one
// per process and share it. Several processes (replicas of the service,
// `cmkd run`, cmkd commands) may use one store at once: with SQLite on one
// machine, with PostgreSQL across machines.
package envelope
