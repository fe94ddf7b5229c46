// Package storetest is the conformance suite every store.Backend passes,
// and the harness it runs on: a Key Vault emulator over HTTPS, the real kek
// client and azkeys client, and a clock the test moves. Backends call Run
// from their tests; other packages reuse NewHarness to get a working store
// against a real (emulated) vault.
package storetest
