// Package events is cmkd's lifecycle event model: the one Event type the rest
// of cmkd sees, whatever shape Event Grid delivered it in, the decoders that
// produce it, and the error kinds with which handlers tell sources whether to
// settle, retry or dead-letter a delivery.
//
// Events are hints. A handler re-reads Key Vault before it acts, so an event
// only says "look at this key now".
package events
