// Package eventgridtopic emulates an Azure Event Grid topic (a custom or
// system topic, not a namespace): the publish endpoint of api-version
// 2018-01-01 that the unchanged azeventgrid Client talks to, and push
// delivery to webhook event subscriptions.
//
// # Publish
//
// One Server is one topic. POST {URL()}?api-version=2018-01-01 takes a batch
// of CloudEvents 1.0 ("application/cloudevents-batch+json", or a single event
// as "application/cloudevents+json") or of Event Grid schema events
// ("application/json"). Config.Schema may restrict the topic to one input
// schema, as Azure does; empty accepts both. Requests authenticate as the
// service allows: the "aeg-sas-key" header with the topic key, an
// "aeg-sas-token" signed with it (HMAC-SHA256 over "r=<resource>&e=<expiry>"
// with the base64-decoded key), or, with Config.AcceptBearer, any
// "Authorization: Bearer" token. Bearer tokens are NOT validated: no Entra
// issuer, audience, signature or role check happens, so the emulator cannot
// catch a sender with the wrong identity or scope.
//
// Failures answer the service's status and {"error":{"code","message"}}
// body: 401 Unauthorized, 413 RequestEntityTooLarge for a body over 1 MB, 400
// BadRequest for malformed JSON, a missing required attribute or an event
// over 1 MB, 404 NotFound for any other path. SetFailing makes publishes
// answer a chosen status so that a sender's retries can be tested.
//
// Every accepted event is kept and can be read back with Published or
// waited for with WaitPublished. Publish hands events in from the same
// process, for other emulators.
//
// # Push delivery
//
// Subscribe creates a webhook event subscription. Its endpoint must pass the
// validation handshake first, as with Azure: a SubscriptionValidationEvent
// whose validationCode is echoed back as {"validationResponse": code} for
// the Event Grid schema, an OPTIONS request with WebHook-Request-Origin
// answered 200 with WebHook-Allowed-Origin for CloudEvents. Events published
// afterwards are delivered by a goroutine per subscription, with Event
// Grid's aeg-event-type, aeg-subscription-name and aeg-delivery-count
// headers and, when configured, "Authorization: Bearer" as Entra-protected
// delivery sends it. The outcome rules are the documented ones for
// webhooks: 200-204 is success; 400, 401, 403 and 413 dead-letter at once
// ("UndeliverableDueToHttpBadRequest" and the like); any other answer,
// timeouts and connection errors are retried on the subscription's
// schedule (Event Grid's by default, shrinkable for tests) until
// MaxDeliveryAttempts ("MaxDeliveryAttemptsExceeded") or the event's time to
// live ("TimeToLiveExceeded") run out. MaxEventsPerBatch and
// PreferredBatchSizeKB batch events as Event Grid does. Dead letters are kept
// in memory (DeadLetters, WaitDeadLetters) and, with Config.DeadLetterDir,
// also written as JSON files laid out like the blobs Event Grid writes.
// Delivered, Attempts, Pending and WaitDelivered help assertions.
//
// # Not emulated
//
// Everything is in memory and lost on Close. There is no management plane
// (subscriptions are created with Subscribe, not ARM), no filtering, no
// Event Hubs, Service Bus, Storage Queue or Azure Function destinations, no
// asynchronous (validationUrl) handshake: the URL is sent but not served,
// no delivery with managed identity (a static or callback bearer token is
// sent instead), no retry jitter, no minimum wait per status code, and
// deliveries to one subscription are made one request at a time. Schema
// conversion is done both ways although Azure refuses to deliver a
// CloudEvents topic's events in the Event Grid schema.
//
// The package imports nothing of cmkd outside emulator/ so that anyone may
// use it.
package eventgridtopic
