// Package status moves cmkd's status events from the store's outbox to the
// JetStream stream CMKD_STATUS, and reads them back for auditors.
//
// Every state change writes its event to the outbox in the same transaction
// as the change. The Relay claims outbox entries, publishes them in outbox
// order with Nats-Msg-Id set to the event id, and marks them sent only after
// JetStream acknowledged them. A NATS outage or a crash between publish and
// mark therefore loses nothing, and JetStream's duplicate window (longer
// than a claim) drops the second copy of a retried publish, so several
// relays on one store publish each event once.
//
// Each message is a CloudEvents 1.0 JSON document in structured mode on
// cmkd.status.<tenant>.<kind> (cmkd.StatusEvent.MarshalCloudEvent writes
// it, cmkd.ParseStatusEvent reads it back).
// Tail reads the stream through an ordered ephemeral consumer for
// `cmkd audit tail`.
package status
