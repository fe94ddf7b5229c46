// Package status moves cmkd's status events from the store's outbox to the
// JetStream stream CMKD_STATUS and to an Azure Event Grid topic, and reads
// them back from the stream for auditors.
//
// Every state change writes its event to the outbox in the same transaction
// as the change. The Relay claims outbox entries, publishes them in outbox
// order with Nats-Msg-Id set to the event id, and marks them sent only after
// JetStream acknowledged them. A NATS outage or a crash between publish and
// mark therefore loses nothing, and JetStream's duplicate window (longer
// than a claim) drops the second copy of a retried publish, so several
// relays on one store publish each event once.
//
// The EventGridRelay does the same for an Event Grid topic, with delivery
// state of its own in the outbox (store.ClaimOutboxFor), so either sink
// runs while the other is down and catches up afterwards. Delivery to
// Event Grid is at least once: a crash between publish and mark, or a
// publish whose answer was lost, publishes the event again when its claim
// runs out, and Event Grid has no duplicate window. Subscribers must
// deduplicate by the CloudEvent id, which is the outbox event's id and the
// same as on NATS. An event Event Grid can never accept (over its 1 MB
// request limit, or refused alone) is given up for Event Grid only, logged
// and counted; see EventGridRelay.
//
// Each message is a CloudEvents 1.0 JSON document in structured mode on
// cmkd.status.<tenant>.<kind> (cmkd.StatusEvent.MarshalCloudEvent writes
// it, cmkd.ParseStatusEvent reads it back); on Event Grid the same
// document is one event of a CloudEvents batch. The source is cmkd/<the
// publishing relay's instance>.
// Tail reads the stream through an ordered ephemeral consumer for
// `cmkd audit tail`.
package status
