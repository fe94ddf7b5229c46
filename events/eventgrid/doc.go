// Package eventgrid is the pull source of lifecycle events: it receives Key
// Vault events (and cmkd's own command events) from an Event Grid namespace
// topic subscription with aznamespaces.ReceiverClient, hands each to an
// events.Handler, and settles it only after the handler returns.
//
// Settling follows the handler's answer: success (or an event cmkd ignores)
// is acknowledged; a Permanent error or an undecodable event is rejected, so
// Event Grid dead-letters it; any other error releases it for redelivery
// after a delay. While a handler runs longer than the lock, the lock is
// renewed so that no other replica receives the same event meanwhile.
package eventgrid
