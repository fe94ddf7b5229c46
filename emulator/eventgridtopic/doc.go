// Package eventgridtopic emulates an Azure Event Grid topic (a custom or
// system topic, not a namespace): the publish endpoint of api-version
// 2018-01-01 that the unchanged azeventgrid Client talks to.
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
// # Not emulated
//
// Everything is in memory and lost on Close. There is no management plane
// and no delivery to event subscriptions yet.
//
// The package imports nothing else of cmkd so that anyone may use it.
package eventgridtopic
