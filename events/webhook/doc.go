// Package webhook is the push event source: an HTTP endpoint Event Grid
// delivers to. It answers both subscription handshakes (the Event Grid
// schema's SubscriptionValidationEvent and the CloudEvents OPTIONS abuse
// protection), authenticates deliveries (a Microsoft Entra bearer token or a
// shared secret), and answers so that Event Grid's retry policy does the
// right thing: 2xx when handled, 4xx (no retry, dead-letter) when the
// delivery can never succeed, 5xx only when a retry can help.
//
// With Entra authentication, set EntraAuth.AllowedApplications to Event
// Grid's application (EventGridApplicationID in Azure's public cloud):
// otherwise a token any application of the tenant obtained for the
// webhook's audience is accepted. Signing keys are fetched in the
// background, shared by the requests waiting for them, and fetched again
// every RefreshInterval so that withdrawn keys stop being trusted.
//
// It handles events inline, or in queue-based deployments enqueues the body
// to the JetStream work queue (see events/natsq) and answers at once.
package webhook
