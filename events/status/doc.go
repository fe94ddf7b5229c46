// Package status moves cmkd's status events from the store's outbox to the
// JetStream stream CMKD_STATUS, and reads them back for auditors.
//
// Every state change writes its event to the outbox in the same transaction
// as the change; the Relay publishes outbox entries with Nats-Msg-Id set to
// the event id and marks them sent only after JetStream acknowledged them.
// A NATS outage or a crash between publish and mark therefore loses nothing,
// and JetStream's duplicate window drops the second copy of a retried
// publish. Each message is a CloudEvents 1.0 JSON document on
// cmkd.status.<tenant>.<kind>.
package status
