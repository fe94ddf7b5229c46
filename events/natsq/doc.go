// Package natsq is the queue-based event source: a durable pull consumer on
// the JetStream work-queue stream CMKD_EVENTS, so that several cmkd replicas
// share the events Event Grid delivered (the webhook enqueues them with
// Enqueue). A message is acknowledged only after its events were handled;
// a failing one is redelivered with backoff, and a malformed one, one a
// handler rejects permanently, or one out of deliveries is copied to the
// dead-letter subject and terminated (a reference to it, when it is too
// large to copy; nothing, logged and counted, when no dead letter can be
// stored by its last delivery).
package natsq
