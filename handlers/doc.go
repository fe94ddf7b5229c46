// Package handlers decides what cmkd does about a key, from the key's state
// in Key Vault and never from the event that woke it: an event only says
// "look at this key now". Reconcile probes the key, then converges the store
// to what it found — seal, unseal, warn of expiry, re-wrap to a new version —
// one file per transition. Running it again with nothing changed in Key Vault
// changes nothing, so duplicate, late and forged events are harmless.
package handlers
