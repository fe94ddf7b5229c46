// Package cmkd holds cmkd's words, each defined once: the key id (one
// parser, one canonical form), the wrapped DEK, the tenant id rule and the
// status event with its kinds and seal reasons. Every other package of cmkd
// speaks these types; this one imports nothing of cmkd's and nothing of
// Azure's, so that anything may depend on it.
//
// The packages that do the work sit above it: store (the envelope-encrypted
// store), kek (Key Vault), events (lifecycle events and their sources),
// handlers (what to do about a key), worker (when to do it) and cmd/cmkd.
package cmkd
